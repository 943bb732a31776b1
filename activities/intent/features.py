"""Text to sparse features for the light classifier: words, word pairs, character n-grams
(robust to typos) and lexicon classes. The lexicons carry what a few hundred examples
cannot: that "fabricator", "co-packer" and "roaster" are all businesses one could be
looking for, that "rn" means right now, that "nikkei" is a market. Pure Python, no
dependencies, so the base install routes with it."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable

from shared.language import fold_accents

FEATURE_VERSION = 5

# Chat shorthand and typos common enough to normalise before anything else looks.
_REWRITES = [
    (r"\brn\b", "right now"),
    (r"\bu\b", "you"),
    (r"\bpl[sz]\b", "please"),
    (r"\bwh?ats\b", "what is"),
    (r"\bwat\b", "what"),
    (r"\bwhos\b", "who is"),
    (r"\bwheres\b", "where is"),
    (r"\bany1\b", "anyone"),
    (r"\bthx\b", "thanks"),
    (r"\btmrw\b", "tomorrow"),
    (r"\btonite\b", "tonight"),
    (r"\bmfrs?\b", "manufacturers"),
    (r"\bsupp?l[iy]ers?\b", "suppliers"),
    (r"\bvendros\b", "vendors"),
    (r"\bmanuf[a-z]*ers?\b", "manufacturers"),
]
_REWRITES_RE = [(re.compile(p), r) for p, r in _REWRITES]
_TOKEN = re.compile(r"[a-z0-9]+(?:[&'][a-z0-9]+)*|\$|%|\?")


def normalize(text: str) -> str:
    text = fold_accents(text.lower()).replace("\u2019", "'").replace("\u2018", "'")
    text = text.replace("\u201c", '"').replace("\u201d", '"')
    text = text.replace("\u2014", " ").replace("\u2013", " ")
    text = re.sub(r"\b(\w+)'s\b", r"\1", text)  # possessives: "today's" -> "today"
    for pattern, repl in _REWRITES_RE:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(normalize(text))


def _stem(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


# Lexicon classes: single words (stemmed) and phrases (matched on the token string).
# fmt: off
LEXICONS: dict[str, tuple[str, ...]] = {
    # Businesses one might be looking for.
    "provider": (
        "supplier", "vendor", "manufacturer", "maker", "producer", "fabricator", "distributor",
        "wholesaler", "contractor", "subcontractor", "installer", "agency", "firm", "company",
        "business", "shop", "mill", "foundry", "factory", "integrator", "consultancy",
        "consultant", "provider", "partner", "co-packer", "copacker", "packer", "dealer",
        "reseller", "builder", "printer", "roaster", "caterer", "studio", "lab", "startup",
        "corporation", "corp", "outfit", "specialist", "broker", "forwarder", "carrier", "3pl",
        "oem", "odm", "cmo", "cro", "cdmo", "ems", "exporter", "importer", "processor", "recycler",
        "refiner", "miner", "grower", "bakery", "brewery", "distillery", "winery", "house",
        "service", "servicer", "chain", "retailer", "seller", "merchant", "enterprise",
        "assembler", "molder", "stamper", "machinist", "designer", "developer", "operator",
        "outsourcer", "subsidiary", "conglomerate", "automaker", "airline", "bank", "insurer",
        "exchange", "lender", "firms", "inc", "llc", "ltd", "gmbh",
    ),
    # People and outfits one hires for a job.
    "profession": (
        "accountant", "bookkeeper", "lawyer", "attorney", "cpa", "plumber", "electrician",
        "architect", "engineer", "photographer", "videographer", "cleaner", "mover", "roofer",
        "landscaper", "painter", "welder", "tailor", "translator", "auditor", "recruiter", "fab",
        "freelancer", "technician", "mechanic", "locksmith", "caterer", "planner", "advisor",
        "adviser", "broker", "realtor", "inspector", "surveyor", "installer", "repairer",
        "groomer", "tutor", "coach", "therapist", "dentist", "doctor", "clinic", "vet", "firm",
        "outfit", "crew", "team", "pro", "expert",
    ),
    # Verbs of making, selling and serving (who makes..., companies that supply...).
    "provide_verb": (
        "make", "manufacture", "produce", "supply", "sell", "distribute", "offer", "provide",
        "build", "fabricate", "install", "stock", "carry", "print", "repair", "ship", "machine",
        "mold", "cast", "assemble", "package", "recycle", "deliver", "rent", "lease", "handle",
        "specialize", "service", "source", "export", "import", "cater", "do", "does", "can",
        "could", "hire", "outsource", "contract",
    ),
    "seek": (
        "find", "locate", "search", "look", "looking", "hunting", "sourcing", "need", "want",
        "recommend", "recommendation", "suggest", "suggestion", "list", "show", "get", "compare",
        "alternative", "competitor", "similar", "option", "who", "where", "any", "best", "top",
        "good", "reliable", "reputable", "cheapest", "leading", "biggest", "major", "hire",
    ),
    "time_now": (
        "today", "tonight", "tomorrow", "yesterday", "now", "currently", "current", "latest",
        "recent", "recently", "lately", "breaking", "live", "upcoming", "yet", "still", "rn",
        "morning", "weekend", "week", "month", "quarter", "year", "season", "newest", "just",
        "anymore", "ongoing", "moment",
    ),
    "news": (
        "news", "headline", "announce", "announced", "announcement", "report", "rumor", "update",
        "happened", "happening", "trending", "viral", "recall", "layoff", "strike", "outage",
        "delay", "breach", "bankrupt", "bankruptcy", "lawsuit", "acquisition", "merger", "ipo",
        "earning", "funding", "raised", "hiring", "shortage", "disruption", "investigation",
        "approval", "approved", "contract", "deal", "tariff", "ban", "sanction", "result",
        "decision", "ruling", "verdict", "crisis", "closure", "closed", "shutdown", "expansion",
        "hack", "hacked", "fire", "wildfire", "evacuated", "affected", "impacted", "hit", "cut",
        "hike", "going", "status", "release", "released", "dropped", "launch", "out",
    ),
    "market": (
        "price", "cost", "trading", "stock", "share", "ticker", "market", "index", "dow", "nasdaq",
        "s&p", "nikkei", "ftse", "dax", "futures", "yield", "rate", "bitcoin", "btc", "ethereum",
        "eth", "crypto", "dogecoin", "solana", "gold", "silver", "platinum", "oil", "crude",
        "brent", "wti", "gas", "mortgage", "inflation", "cpi", "unemployment", "gdp", "usd", "eur",
        "gbp", "yen", "peso", "dollar", "euro", "pound", "rupee", "yuan", "worth", "valuation",
        "cap", "fee", "rent", "fare", "charging", "charge", "paying", "quote", "spot", "close",
        "closed", "open", "up", "down",
    ),
    "weather": (
        "weather", "forecast", "rain", "raining", "snow", "snowing", "storm", "temperature",
        "hurricane", "tornado", "wind", "windy", "humidity", "uv", "pollen", "aqi", "air", "heat",
        "cold", "tide", "surf", "sunny", "flood", "flooding", "earthquake", "tsunami", "warning",
        "advisory", "smoke", "degrees",
    ),
    "sport_event": (
        "score", "game", "match", "won", "win", "winning", "lost", "standing", "playoff", "final",
        "tournament", "nba", "nfl", "mlb", "nhl", "league", "f1", "race", "cup", "election",
        "poll", "vote", "voting", "senate", "congress", "president", "minister", "court", "bill",
        "concert", "playing", "showing", "schedule", "fight", "debate", "primaries", "primary",
        "trade", "traded", "eliminated", "olympics", "championship",
    ),
    # Clues that a question is about the past or about what is usual, not about now.
    "past": (
        "was", "were", "first", "historically", "history", "ancient", "century", "during", "ago",
        "originally", "founded", "invented", "discovered", "medieval", "war", "usually",
        "typically", "generally", "normally", "average", "always", "ever", "ideal",
        "theoretically", "classic",
    ),
    # Team nicknames: scores and results are asked by team more often than by league.
    "team": (
        "lakers", "celtics", "knicks", "warriors", "bulls", "heat", "nets", "suns", "bucks",
        "nuggets", "mavericks", "mavs", "clippers", "sixers", "76ers", "raptors", "spurs",
        "rockets", "thunder", "timberwolves", "pelicans", "grizzlies", "cavaliers", "cavs",
        "pacers", "hawks", "hornets", "magic", "pistons", "wizards", "jazz", "kings", "blazers",
        "yankees", "mets", "dodgers", "giants", "cubs", "sox", "astros", "braves", "phillies",
        "padres", "mariners", "orioles", "rays", "guardians", "twins", "tigers", "royals",
        "rangers", "angels", "athletics", "brewers", "cardinals", "reds", "pirates", "marlins",
        "nationals", "rockies", "diamondbacks", "chiefs", "eagles", "cowboys", "patriots",
        "packers", "steelers", "49ers", "niners", "ravens", "bills", "bengals", "broncos",
        "chargers", "raiders", "dolphins", "jets", "commanders", "bears", "lions", "vikings",
        "saints", "falcons", "panthers", "buccaneers", "bucs", "seahawks", "rams", "texans",
        "colts", "jaguars", "titans", "browns", "bruins", "leafs", "canadiens", "oilers", "flyers",
        "penguins", "blackhawks", "avalanche", "islanders", "capitals", "canucks", "flames",
        "senators", "arsenal", "chelsea", "liverpool", "tottenham", "spurs", "madrid", "barcelona",
        "barca", "juventus", "bayern", "psg", "inter", "milan", "united", "city", "dortmund",
        "ajax", "celtic", "yankee", "dodger",
    ),
    "status": (
        "open", "closed", "down", "outage", "delay", "delayed", "status", "wait", "traffic",
        "condition", "line", "available", "cancelled", "canceled", "working",
    ),
    "web_verb": (
        "google", "browse", "internet", "online", "web", "check",
    ),
    "chat_task": (
        "explain", "describe", "define", "definition", "meaning", "mean", "write", "draft",
        "compose", "rewrite", "rephrase", "translate", "proofread", "correct", "fix", "debug",
        "code", "implement", "function", "script", "regex", "sql", "python", "javascript", "java",
        "typescript", "rust", "golang", "bash", "linux", "git", "algorithm", "calculate", "solve",
        "convert", "derivative", "integral", "equation", "poem", "haiku", "story", "joke",
        "limerick", "song", "essay", "letter", "email", "template", "checklist", "recipe", "tip",
        "advice", "example", "difference", "history", "theory", "concept", "principle", "work",
        "brainstorm", "idea", "summary", "pros", "cons", "plan", "outline", "tutorial", "learn",
        "teach", "why", "riddle", "slogan", "tagline", "name", "fictional", "fake", "pretend",
        "imaginary", "fantasy", "spec", "specification", "standard", "protocol", "version", "rfc",
        "api", "error", "bug", "exception", "syntax", "grammar", "synonym", "quiz", "trivia",
        "agreement", "clause", "policy", "strategy", "culture", "model",
    ),
    "greeting": (
        "hi", "hello", "hey", "thanks", "thank", "bye", "ok", "okay", "cool", "great", "yes", "no",
        "sure", "nice", "awesome", "morning", "please", "continue",
    ),
}
# fmt: on
# fmt: off
PHRASES: dict[str, tuple[str, ...]] = {
    "seek": (
        "looking for", "look for", "in search of", "who makes", "who sells", "who supplies",
        "who manufactures", "who produces", "who can", "who does", "who offers", "who provides",
        "who builds", "who distributes", "who carries", "who could", "who should i", "where can i",
        "where do i", "where to buy", "where to get", "find me", "get me", "show me", "list of",
        "any good", "do you know any", "know any", "can you find", "can you recommend",
        "companies like", "similar to", "alternatives to", "alternative to", "competitors of",
        "competitors to", "who else", "in bulk", "wholesale", "low moq", "minimum order",
        "small run", "short run", "small batch", "turnaround", "on contract", "white label",
        "private label", "near me", "based in", "located in", "around",
    ),
    "time_now": (
        "right now", "this week", "this month", "this year", "this quarter", "this weekend",
        "this morning", "this afternoon", "this evening", "last night", "last week", "these days",
        "at the moment", "as of now", "so far", "up to date", "real time", "real-time",
        "this season", "next week", "past week", "last few weeks",
    ),
    "market": (
        "stock price", "share price", "exchange rate", "interest rate", "trading at",
        "how much is", "how much does", "how much are", "going for", "market cap", "gas prices",
        "mortgage rates", "price of", "cost of",
    ),
    "news": (
        "what happened", "what is happening", "what is going on", "going on with", "any news",
        "latest on", "update on", "updates on", "in the news", "news on", "news about",
        "latest news", "breaking news", "come out", "came out",
    ),
    "web_verb": (
        "search the web", "search online", "look up", "look it up", "check online",
        "on the internet", "web search",
    ),
    "sport_event": (
        "how did the", "did the", "who won", "who is winning", "who is leading", "play next",
        "game tonight", "match today",
    ),
    "past": (
        "back in", "in the past", "used to", "in history", "of all time", "in general",
        "on average",
    ),
    "weather": (
        "how cold", "how hot", "how warm", "is it raining", "is it snowing",
    ),
    "chat_task": (
        "what is a", "what is an", "what are the", "how do i", "how to", "how does", "how do",
        "difference between", "pros and cons", "what does", "tell me about", "can you explain",
        "help me write", "give me an example", "like i'm five", "in general", "history of",
        "how is", "what causes", "why do", "why is", "latest version", "current version",
        "newest version", "latest revision", "current state", "current account", "current ratio",
        "electric current", "the current in", "ac and dc current", "dc current",
    ),
}
# fmt: on
# The same classes in Spanish (accents folded), so what the English examples teach about a
# class carries over to a Spanish message that shares none of their words.
# fmt: off
SPANISH_LEXICONS: dict[str, tuple[str, ...]] = {
    "provider": (
        "proveedor", "proveedores", "empresa", "empresas", "compania", "companias",
        "fabricante", "fabricantes", "distribuidor", "distribuidora", "distribuidores",
        "mayorista", "mayoristas", "contratista", "contratistas", "agencia", "agencias",
        "despacho", "despachos", "taller", "talleres", "firma", "firmas", "consultora",
        "consultoras", "consultoria", "negocio", "negocios", "tienda", "tiendas", "fabricas",
        "laboratorio", "laboratorios", "imprenta", "imprentas", "maquiladora", "maquiladoras",
        "integrador", "integradores", "socio", "socios", "marca", "marcas", "transportista",
        "transportistas", "naviera", "navieras", "aseguradora", "banco", "bancos", "estudio",
        "estudios", "servicio", "servicios", "vendedor", "vendedores", "importador",
        "importadores", "exportador", "exportadores", "constructora", "constructoras",
        "operador", "operadores", "bufete", "bufetes",
    ),
    "profession": (
        "abogado", "abogados", "contador", "contadores", "electricista", "plomero", "fontanero",
        "arquitecto", "ingeniero", "ingenieros", "traductor", "traductores", "tecnico",
        "tecnicos", "mecanico", "consultor", "consultores", "asesor", "asesores", "experto",
        "expertos", "especialista", "especialistas",
    ),
    "provide_verb": (
        "fabrica", "fabrican", "hacen", "produce", "producen", "vende", "venden", "distribuye",
        "distribuyen", "ofrece", "ofrecen", "provee", "proveen", "suministra", "suministran",
        "instala", "instalan", "importa", "exporta", "desarrolla", "desarrollan", "presta",
        "prestan", "brinda", "brindan", "maquila", "maquilan", "imprime", "reparan",
    ),
    "seek": (
        "busco", "buscamos", "buscar", "busca", "buscando", "encuentra", "encontrar",
        "encuentrame", "necesito", "necesitamos", "quiero", "queremos", "recomienda",
        "recomiendame", "recomiendan", "recomendar", "recomendarme", "recomendacion", "sugiere",
        "sugiereme", "lista", "listado", "muestrame", "dame", "compara", "comparar", "conoces",
        "alternativa", "alternativas", "quien", "quienes", "donde", "cual", "cuales", "mejor",
        "mejores", "principales", "confiable", "confiables", "barato", "baratos",
    ),
    "time_now": (
        "hoy", "ahora", "ahorita", "actual", "actualmente", "actuales", "ultimo", "ultima",
        "ultimos", "ultimas", "reciente", "recientes", "recientemente", "manana", "ayer",
        "anoche", "semana", "mes", "ano", "vivo", "todavia", "aun", "momento", "vigente",
        "vigentes", "proximo", "proxima",
    ),
    "news": (
        "noticia", "noticias", "titulares", "anuncio", "anunciaron", "paso", "pasando",
        "sucedio", "ocurrio", "novedades", "retraso", "retrasos", "demora", "demoras", "huelga",
        "paro", "caida", "falla", "escasez", "arancel", "aranceles", "despidos", "quiebra",
        "fusion", "adquisicion", "lanzamiento", "lanzo", "salio", "estado", "cierre",
        "bloqueo", "bloqueos", "contratando",
    ),
    "market": (
        "precio", "precios", "cuesta", "cuestan", "cotiza", "cotizacion", "bolsa", "accion",
        "acciones", "tasa", "tasas", "cambio", "dolar", "dolares", "peso", "pesos", "inflacion",
        "gasolina", "tarifa", "tarifas", "cobran", "cobra", "valor", "vale",
    ),
    "weather": (
        "clima", "lluvia", "llueve", "lloviendo", "nieve", "nevando", "tormenta", "temperatura",
        "huracan", "pronostico", "calor", "frio", "viento", "sismo", "temblor", "inundacion",
        "alerta", "grados",
    ),
    "sport_event": (
        "partido", "marcador", "gano", "perdio", "resultado", "resultados", "liga", "torneo",
        "elecciones", "eleccion", "encuesta", "votacion", "presidente", "juega", "jugo",
        "carrera", "mundial",
    ),
    "past": (
        "fue", "era", "eran", "historia", "historicamente", "siglo", "durante", "antiguo",
        "originalmente", "fundada", "fundado", "invento", "normalmente", "generalmente",
        "siempre", "promedio",
    ),
    "status": (
        "abierto", "abierta", "cerrado", "cerrada", "disponible", "disponibles", "funcionando",
        "cancelado", "cancelados", "trafico", "fila", "espera", "existencia", "existencias",
        "inventario", "caido",
    ),
    "web_verb": ("internet", "googlea", "googlear", "linea", "revisa", "consulta"),
    "chat_task": (
        "explica", "explicame", "explicar", "describe", "define", "definicion", "significa",
        "significado", "escribe", "escribeme", "redacta", "redactar", "redactame", "traduce",
        "traducir", "corrige", "corregir", "revisar", "resume", "resumen", "resumir", "codigo",
        "funcion", "calcula", "calcular", "resuelve", "poema", "cuento", "chiste", "ensayo",
        "carta", "correo", "plantilla", "receta", "consejo", "consejos", "ejemplo",
        "diferencia", "teoria", "concepto", "idea", "ideas", "ventajas", "desventajas",
        "ayudame", "ensename", "aprender", "porque",
    ),
    "greeting": (
        "hola", "gracias", "adios", "vale", "bueno", "buenas", "perfecto", "genial", "claro",
        "dias", "tardes", "noches", "saludos",
    ),
}
# fmt: on
# fmt: off
SPANISH_PHRASES: dict[str, tuple[str, ...]] = {
    "seek": (
        "estoy buscando", "estamos buscando", "me puedes recomendar", "puedes recomendarme",
        "me recomiendas", "conoces alguna", "conoces algun", "que empresas", "cuales empresas",
        "que proveedores", "quien vende", "quien fabrica", "quien hace", "donde puedo",
        "donde comprar", "lista de", "cerca de", "con sede en", "ubicadas en", "ubicados en",
    ),
    "time_now": (
        "en este momento", "hoy en dia", "estos dias", "esta semana", "este mes", "este ano",
        "ahora mismo", "en vivo", "en tiempo real", "al dia de hoy", "por ahora",
    ),
    "market": ("tipo de cambio", "cuanto cuesta", "cuanto cuestan", "cuanto vale", "a cuanto"),
    "news": ("que paso", "que esta pasando", "ultimas noticias", "que hay de nuevo"),
    "weather": ("que tiempo hace", "el tiempo en", "el tiempo hoy"),
    "chat_task": (
        "que es", "que son", "como funciona", "como se", "por que", "cual es la diferencia",
        "ayudame a", "me ayudas a",
    ),
}
# fmt: on

_LEX_WORDS: dict[str, list[str]] = {}
for _lexicons in (LEXICONS, SPANISH_LEXICONS):
    for _name, _words in _lexicons.items():
        for _w in _words:
            _classes = _LEX_WORDS.setdefault(_stem(_w), [])
            if _name not in _classes:
                _classes.append(_name)
_PHRASES = [
    (name, f" {p} ")
    for phrases_by_class in (PHRASES, SPANISH_PHRASES)
    for name, phrases in phrases_by_class.items()
    for p in phrases
]

# Pairs of classes whose co-occurrence is the signal (a business and a time: `both`).
_PAIRS = [
    ("provider", "time_now"),
    ("provider", "news"),
    ("provider", "market"),
    ("provider", "seek"),
    ("provider", "provide_verb"),
    ("provider", "chat_task"),
    ("profession", "seek"),
    ("profession", "time_now"),
    ("seek", "provide_verb"),
    ("time_now", "news"),
    ("time_now", "market"),
    ("time_now", "weather"),
    ("time_now", "sport_event"),
    ("time_now", "chat_task"),
    ("time_now", "past"),
    ("sport_event", "past"),
    ("market", "past"),
    ("weather", "past"),
    ("provider", "past"),
    ("market", "chat_task"),
    ("news", "chat_task"),
]


def lexicon_classes(toks: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tok in toks:
        for name in _LEX_WORDS.get(_stem(tok), ()):
            counts[name] = counts.get(name, 0) + 1
    joined = f" {' '.join(toks)} "
    for name, phrase in _PHRASES:
        if phrase in joined:
            counts[name] = counts.get(name, 0) + 1
    return counts


def _char_grams(word: str, low: int = 3, high: int = 5) -> Iterable[str]:
    padded = f" {word} "
    for n in range(low, high + 1):
        for i in range(len(padded) - n + 1):
            yield padded[i : i + n]


def extract(text: str) -> dict[str, dict[str, float]]:
    """Feature groups of one text: {"w": words and pairs, "c": char n-grams, "l": lexicon}.
    Values are counts; the classifier weighs and normalises each group."""
    toks = tokens(text)
    stems = [_stem(t) for t in toks]
    words: dict[str, float] = {}
    for s in stems:
        words[f"w:{s}"] = 1.0
    for a, b in itertools.pairwise(stems):
        words[f"b:{a}_{b}"] = 1.0
    if stems:
        words[f"first:{stems[0]}"] = 1.0
        if len(stems) > 1:
            words[f"first2:{stems[0]}_{stems[1]}"] = 1.0
    chars: dict[str, float] = {}
    for tok in toks:
        if tok.isalpha():
            for gram in _char_grams(tok):
                chars[f"c:{gram}"] = chars.get(f"c:{gram}", 0.0) + 1.0
    lex: dict[str, float] = {}
    classes = lexicon_classes(toks)
    for name, count in classes.items():
        lex[f"l:{name}"] = min(count, 3) / 3
    for a, b in _PAIRS:
        if a in classes and b in classes:
            lex[f"l:{a}+{b}"] = 1.0
    n = len(toks)
    lex["len:short" if n <= 3 else "len:mid" if n <= 12 else "len:long"] = 1.0
    if any(t.isdigit() and len(t) == 4 and t[:2] in ("18", "19", "20") for t in toks):
        lex["l:year"] = 1.0
    if "?" in toks:
        lex["l:question"] = 1.0
    return {"w": words, "c": chars, "l": lex}


def l2(vec: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(v * v for v in vec.values()))
    return {k: v / norm for k, v in vec.items()} if norm else vec
