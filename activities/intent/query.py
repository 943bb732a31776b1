"""What a search should look for: the request's wording stripped of how it was asked
("find me", "who are", "can you search for", "please", "?") and, where a place is named
("in Ohio", "near Austin, TX", "based in Germany"), that place as a location filter.

For company search the place leaves the query (the index filters on it); for web search
it stays in the query too, since the search model takes one string."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.models import Intent

US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "florida": "FL", "georgia": "GA",
    "hawaii": "HI", "idaho": "ID", "illinois": "IL", "indiana": "IN", "iowa": "IA",
    "kansas": "KS", "kentucky": "KY", "louisiana": "LA", "maine": "ME", "maryland": "MD",
    "massachusetts": "MA", "michigan": "MI", "minnesota": "MN", "mississippi": "MS",
    "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI",
    "wyoming": "WY", "district of columbia": "DC", "washington dc": "DC",
}  # fmt: skip
COUNTRIES = (
    "usa", "us", "united states", "america", "canada", "mexico", "brazil", "argentina",
    "chile", "colombia", "peru", "uk", "united kingdom", "britain", "great britain",
    "england", "scotland", "wales", "ireland", "france", "germany", "italy", "spain",
    "portugal", "netherlands", "holland", "belgium", "switzerland", "austria", "poland",
    "czech republic", "czechia", "hungary", "romania", "bulgaria", "greece", "turkey",
    "sweden", "norway", "denmark", "finland", "iceland", "estonia", "latvia", "lithuania",
    "ukraine", "russia", "israel", "egypt", "morocco", "nigeria", "kenya", "south africa",
    "saudi arabia", "uae", "united arab emirates", "qatar", "india", "pakistan",
    "bangladesh", "sri lanka", "china", "hong kong", "taiwan", "japan", "south korea",
    "korea", "vietnam", "thailand", "malaysia", "singapore", "indonesia", "philippines",
    "australia", "new zealand", "cambodia", "slovakia", "slovenia", "croatia", "serbia",
)  # fmt: skip
CITIES = (
    "new york city", "nyc", "los angeles", "la", "chicago", "houston", "phoenix",
    "philadelphia", "san antonio", "san diego", "dallas", "austin", "san jose",
    "san francisco", "seattle", "denver", "boston", "detroit", "nashville", "portland",
    "las vegas", "atlanta", "miami", "minneapolis", "cleveland", "cincinnati", "columbus",
    "pittsburgh", "baltimore", "charlotte", "raleigh", "tampa", "orlando", "sacramento",
    "salt lake city", "kansas city", "st. louis", "st louis", "milwaukee", "indianapolis",
    "tulsa", "oklahoma city", "memphis", "new orleans", "buffalo", "rochester",
    "albuquerque", "tucson", "fresno", "boise", "reno", "omaha", "louisville", "richmond",
    "toledo", "wichita", "spokane", "anchorage", "honolulu", "brooklyn", "manhattan",
    "queens", "jersey city", "newark", "oakland", "fort worth", "el paso", "scottsdale",
    "toronto", "montreal", "vancouver", "calgary", "ottawa", "london", "manchester",
    "birmingham", "paris", "lyon", "berlin", "munich", "hamburg", "frankfurt", "stuttgart",
    "madrid", "barcelona", "milan", "rome", "amsterdam", "rotterdam", "brussels", "zurich",
    "vienna", "prague", "warsaw", "stockholm", "oslo", "copenhagen", "helsinki", "dublin",
    "lisbon", "istanbul", "dubai", "tel aviv", "mumbai", "delhi", "bangalore", "bengaluru",
    "chennai", "shanghai", "beijing", "shenzhen", "guangzhou", "hong kong", "taipei",
    "tokyo", "osaka", "seoul", "singapore", "bangkok", "hanoi", "ho chi minh city",
    "jakarta", "manila", "sydney", "melbourne", "auckland", "mexico city", "monterrey",
    "guadalajara", "tijuana", "sao paulo", "rio de janeiro", "buenos aires", "santiago",
    "bogota", "lima", "cairo", "lagos", "nairobi", "johannesburg", "cape town", "wuhan",
)  # fmt: skip
REGIONS = (
    "the midwest", "midwest", "the pacific northwest", "pacific northwest", "the northeast",
    "northeast", "the southeast", "southeast", "the southwest", "southwest", "new england",
    "the east coast", "east coast", "the west coast", "west coast", "the gulf coast",
    "gulf coast", "the bay area", "bay area", "silicon valley", "southern california",
    "northern california", "socal", "norcal", "europe", "the eu", "eu", "asia",
    "southeast asia", "east asia", "latin america", "south america", "central america",
    "north america", "the middle east", "middle east", "africa", "scandinavia",
    "eastern europe", "western europe", "central europe", "the balkans", "the uk",
    "the us", "the usa", "the united states", "the united kingdom", "the netherlands",
    "the philippines", "the uae", "the rust belt", "the sun belt", "the south",
    "upstate new york", "long island", "central florida", "south florida", "north texas",
    "east texas", "west texas", "southern ontario", "ontario", "quebec", "british columbia",
    "alberta", "manitoba", "nova scotia", "bavaria", "catalonia", "lombardy", "guangdong",
    "zhejiang", "jiangsu",
)  # fmt: skip
# Spanish names, as typed with and without accents.
SPANISH_PLACES = (
    "méxico", "ciudad de méxico", "ciudad de mexico", "cdmx", "nueva york", "estados unidos",
    "españa", "espana", "perú", "bogotá", "medellín", "medellin", "cali", "quito", "caracas",
    "montevideo", "asunción", "asuncion", "la paz", "san josé", "panamá", "panama",
    "guatemala", "el salvador", "honduras", "nicaragua", "costa rica", "ecuador", "uruguay",
    "paraguay", "venezuela", "bolivia", "puebla", "querétaro", "queretaro", "jalisco",
    "nuevo león", "nuevo leon", "yucatán", "yucatan", "sevilla", "valencia", "bilbao",
    "málaga", "malaga", "zaragoza", "cataluña", "andalucía", "andalucia", "europa",
    "latinoamérica", "latinoamerica", "américa latina", "norteamérica", "centroamérica",
    "sudamérica", "alemania", "francia", "italia", "reino unido", "japón", "canadá",
    "brasil", "chile", "colombia", "argentina",
)  # fmt: skip
_ALL_PLACES = sorted(
    {*US_STATES, *COUNTRIES, *CITIES, *REGIONS, *SPANISH_PLACES}, key=lambda p: (-len(p), p)
)
_STATE_ABBRS = sorted(set(US_STATES.values()))
# Capitalised words after "in" that are not places.
_NOT_PLACES = {
    "python", "java", "javascript", "excel", "english", "spanish", "french", "german",
    "chinese", "japanese", "bulk", "stock", "house", "person", "time", "general", "total",
    "q1", "q2", "q3", "q4", "january", "february", "march", "april", "may", "june", "july",
    "august", "september", "october", "november", "december", "my", "our", "the", "a",
    "an", "this", "that", "stainless", "color", "colour", "aluminum", "aluminium", "steel",
    "sql", "rust", "go", "c", "react", "pdf", "word", "markdown", "i", "usd", "eur",
}  # fmt: skip

_PLACE_ALT = "|".join(re.escape(p) for p in _ALL_PLACES)
_ABBR_ALT = "|".join(_STATE_ABBRS)
_CAP_WORD = r"(?:[A-ZÁÉÍÓÚÑ][a-záéíóúñ][a-zA-ZáéíóúñÁÉÍÓÚÑ.'-]*)"
_PREP = (
    r"(?:based\s+(?:in|out\s+of)|located\s+(?:in|near)|headquartered\s+in|"
    r"(?:somewhere\s+)?in(?:\s+or\s+(?:near|around))?|near|nearby|around|close\s+to|"
    r"out\s+of|within|across|throughout|anywhere\s+in|serving|on|"
    # Spanish: "en", "cerca de", "con sede en", "ubicadas en", "alrededor de"
    r"en|cerca\s+de|con\s+sede\s+en|ubicad[oa]s?\s+en|alrededor\s+de|por\s+la\s+zona\s+de)"
)
_KNOWN = re.compile(
    rf"\b(?P<prep>{_PREP})\s+(?:the\s+(?=(?:{_PLACE_ALT})\s+area\b)|(?:la|el)\s+(?=[A-ZÁÉÍÓÚ]))?"
    rf"(?P<place>(?:{_PLACE_ALT}))"
    rf"(?P<tail>(?:,?\s+(?-i:{_ABBR_ALT})\b)|(?:,\s*(?:{_PLACE_ALT}))\b)?"
    rf"(?:\s+area)?(?![\w-])",
    re.I,
)
_CAPITALISED = re.compile(
    rf"\b(?P<prep>{_PREP})\s+(?P<place>{_CAP_WORD}(?:\s+{_CAP_WORD}){{0,2}})"
    rf"(?P<tail>,?\s+(?:{_ABBR_ALT})\b|,\s*(?:{_PLACE_ALT})\b)?(?:\s+area)?\b",
)

_ABBR_ONLY = re.compile(rf"\b(?P<prep>{_PREP})\s+(?P<place>{_ABBR_ALT})\b(?![-'])")

# How a request is asked, not what it asks for: stripped from the front, repeatedly.
_LEADING = re.compile(
    r"^(?:"
    r"(?:hi|hello|hey)(?: there)?|yo|ok|okay|so|um|hmm|please|pls|plz|kindly|"
    r"quick question|question|"
    r"can you(?: please)?|could you(?: please)?|would you(?: please)?|can u|could u|"
    r"will you|i was wondering if you could|do you mind|"
    r"help me(?: to)?|i need you to|i want you to|i'd like you to|"
    r"(?:i|we)(?:'m| am|'re| are) (?:looking|searching|hunting|trying to find|trying to "
    r"source)(?: for)?|(?:i|we)(?:'m| am|'re| are) sourcing|"
    r"(?:i|we) (?:need|want|would like|'d like)(?: to (?:find|get|source|hire|know))?|"
    r"(?:i|we)'d like(?: to (?:find|get|know))?|"
    r"looking for|searching for|hunting for|in search of|sourcing|"
    r"find me|find us|find|locate|get me|show me|give me|tell me|list me|send me|"
    r"search(?: the)?(?: web| internet| online| company database| database| index)?"
    r"(?: for)?|"
    r"look up|look for|look into|check(?: the)?(?: web| online)?(?: for)?|google|"
    r"recommend(?: me)?|suggest(?: me)?|any recommendations for|any suggestions for|"
    r"what(?:'s| is| are)? (?:some|a few|the best|the top|good)|"
    r"a list of|list of|list|need|want|"
    r"are there any|is there an?|are there|do you know(?: of)? any|do you know(?: of)? an?|"
    r"know any|any good|any|some|a few|a couple of|"
    r"who are(?: the)?|who is(?: the)?|what are(?: the)?|which are(?: the)?|"
    r"who makes|who manufactures|who produces|who sells|who supplies|who distributes|"
    r"who offers|who provides|who builds|who does|who carries|who stocks|"
    r"who (?:can|could)(?: (?:do|make|build|supply|provide|help with|handle))?|"
    r"(?:which|what) (?:companies|firms|vendors|suppliers|manufacturers|businesses|shops|"
    r"makers|providers|contractors|agencies|distributors)(?: (?:do|does|can|could|make|"
    r"sell|supply|offer|provide|produce|manufacture|are there|that))?|"
    r"a|an|the|"
    # Spanish
    r"hola|buenas|por favor|oye|"
    r"(?:me )?(?:puedes|podr[ií]as|pod[eé]s)(?: (?:recomendarme|recomendar|buscarme|buscar|"
    r"encontrarme|encontrar|darme|pasarme|sugerirme|decirme))?|"
    r"recomi[eé]ndame|recomi[eé]ndanos|sugi[eé]reme|b[uú]scame|encu[eé]ntrame|"
    r"(?:estoy|estamos) buscando|busco|buscamos|buscar|busca|necesito|necesitamos|"
    r"quiero|queremos|quisiera|me gustar[ií]a(?: encontrar| conocer)?|"
    r"dame|mu[eé]strame|(?:una )?lista de|conoces|sabes de|"
    r"(?:qu[eé]|cu[aá]les|cu[aá]l) (?:son )?(?:las |los )?(?:mejores )?|"
    r"qui[eé]n(?:es)?|hay|alg[uú]n[oa]?s?|unos|unas|un|una|el|la|los|las"
    r")\b[\s,:]*",
    re.I,
)
_TRAILING = re.compile(
    r"(?:[\s,;:-]*(?:please|pls|thanks|thank you|for me|for us|any ideas|any suggestions|"
    r"if possible|asap|thx|por favor|gracias|[?!.]+))+$",
    re.I,
)


@dataclass(frozen=True)
class SearchQuery:
    query: str
    location: str | None
    web_query: str | None = None  # `both`: the web search's query, the whole request


# Where a `both` request turns from the companies to what is happening with them: "...
# and tell me the latest news about them", "..., and what's going on with them".
_WEB_HALF = re.compile(
    r"(?:\s*,)?\s+(?:and|y|plus|then)\s+(?:also\s+|then\s+)?(?:(?:please\s+)?(?:tell|give|show|"
    r"get|send)\s+(?:me|us)\b|let\s+me\s+know\b|what(?:'s| is| are)?\b|how\b|whether\b|if\b|"
    r"any\b|check\b|find\s+out\b|look\s+up\b|summari[sz]e\b|dime\b|dame\b|cu[eé]ntame\b|"
    r"qu[eé]\b|c[oó]mo\b|si\b).*$",
    re.I,
)


_NEWS_ABOUT = re.compile(
    r"^(?:(?:any|the|what(?:'s| is| are)?(?: the)?)\s+)?(?:latest|recent|current|newest)?\s*"
    r"(?:news|updates?|headlines|developments)\s+(?:about|on|for|from|regarding)\s+",
    re.I,
)


def company_half(text: str) -> str:
    """The company request of a `both` message, without its news or current-info half:
    "cloud suppliers and tell me the latest news about them" -> "cloud suppliers",
    "latest news about lithium battery suppliers" -> "lithium battery suppliers"."""
    cut = _WEB_HALF.sub("", text).strip(" ,.;")
    cut = _NEWS_ABOUT.sub("", strip_request(cut)).strip()
    return cut or text


def _title(place: str) -> str:
    lowered = place.lower()
    words = [w for w in lowered.split() if w != "the"] or lowered.split()
    fixed = {"usa": "USA", "us": "US", "uk": "UK", "eu": "EU", "uae": "UAE", "nyc": "NYC"}
    fixed |= {"la": "LA", "socal": "SoCal", "norcal": "NorCal", "dc": "DC"}
    # Spanish joins stay lower case: "Ciudad de México", "Nuevo León".
    joins = {"de", "del", "la", "las", "los", "y"}
    return " ".join(
        w if i and w in joins else fixed.get(w, w[:1].upper() + w[1:]) for i, w in enumerate(words)
    )


def find_location(text: str) -> tuple[str, tuple[int, int]] | None:
    """The place named after "in", "near", "based in", ... and the span to cut out."""
    for match in _KNOWN.finditer(text):
        place = match.group("place")
        if place.lower() in {"us", "la", "eu"} and not place.isupper():
            continue  # "in us", "la" as words, not places
        prep = match.group("prep").lower()
        if prep == "on" and "coast" not in place.lower():
            continue
        tail = (match.group("tail") or "").strip(" ,")
        name = _title(place) if not place.isupper() else place
        if tail:
            tail_name = tail.upper() if len(tail) == 2 else _title(tail)
            name = f"{name}, {tail_name}"
        return name, match.span()
    for match in _CAPITALISED.finditer(text):
        words = match.group("place").split()
        while words and words[-1].lower().strip(".") in _NOT_PLACES:
            words.pop()
        if not words or words[0].lower() in _NOT_PLACES or match.group("prep") == "on":
            continue
        place = " ".join(words)
        tail = (match.group("tail") or "").strip(" ,")
        tail_name = (tail.upper() if len(tail) == 2 else _title(tail)) if tail else ""
        name = f"{place}, {tail_name}" if tail else place
        end = match.start("place") + len(place) + (len(match.group("tail") or "") if tail else 0)
        return name, (match.start(), end)
    for match in _ABBR_ONLY.finditer(text):
        return match.group("place"), match.span()
    return None


def location_aliases(location: str) -> list[str]:
    """Spellings a stored address may use for a location: a US state's name and its
    abbreviation ("Ohio" -> ["Ohio", "OH"]), a city's name without its state ("Austin, TX"
    -> ["Austin, TX", "Austin"]). For filters over free-text addresses like "Columbus, OH"."""
    aliases = [location]
    name = location.strip()
    state = US_STATES.get(name.lower())
    if state:
        aliases.append(state)
    by_abbr = {abbr: full for full, abbr in US_STATES.items() if full != "washington dc"}
    if name.upper() in by_abbr and name.isupper():
        aliases.append(_title(by_abbr[name.upper()]))
    if "," in name:
        aliases.append(name.split(",", 1)[0].strip())
    return list(dict.fromkeys(aliases))


def strip_request(text: str) -> str:
    """Remove how the request was put, keeping what it asks for."""
    out = " ".join(text.split()).lstrip("¿¡ ")
    for _ in range(8):
        stripped = _LEADING.sub("", out, count=1).strip()
        stripped = _TRAILING.sub("", stripped).strip()
        if stripped == out:
            break
        out = stripped
    return out or text.strip()


def extract(text: str, intent: Intent) -> SearchQuery:
    """The query and location filter of a search; chat has neither."""
    if intent == "chat":
        return SearchQuery(query="", location=None)
    web_query = None
    if intent == "both":
        web_query = _tidy(strip_request(text)) or text.strip()
        text = company_half(text)
    found = find_location(text)
    location = found[0] if found else None
    if found and intent in ("company_search", "both"):
        start, end = found[1]
        text = f"{text[:start]} {text[end:]}"
    query = _tidy(strip_request(text))
    return SearchQuery(query=query or text.strip(), location=location, web_query=web_query)


def _tidy(query: str) -> str:
    return re.sub(r"\s+([,.?!])", r"\1", query).strip(" ,")
