// The signed-in user's usage against their budgets (GET /v1/me/usage), as one line.

const numbers = new Intl.NumberFormat("en");

function period(label, p) {
  const tokens = Number(p.tokens) || 0;
  const cost = Number(p.cost_usd) || 0;
  let text = `${label}: ${numbers.format(tokens)}`;
  if (p.limit_tokens != null) text += ` of ${numbers.format(Number(p.limit_tokens))}`;
  text += ` tokens, $${cost.toFixed(cost < 1 ? 4 : 2)}`;
  if (p.limit_cost_usd != null) text += ` of $${Number(p.limit_cost_usd).toFixed(2)}`;
  return text;
}

/** Used up: a limit of the day or the month reached (new messages get 429). */
function usedUp(p) {
  const tokens = Number(p.tokens) + (Number(p.reserved_tokens) || 0);
  return (
    (p.limit_tokens != null && tokens >= Number(p.limit_tokens)) ||
    (p.limit_cost_usd != null && Number(p.cost_usd) >= Number(p.limit_cost_usd))
  );
}

/** {text, title, over} for the account panel. */
export function describeUsage(report) {
  const { day, month } = report;
  const over = usedUp(day) || usedUp(month);
  const resets = new Date(usedUp(day) ? day.resets_at : month.resets_at);
  return {
    text: `${period("Today", day)} · ${period("this month", month)}`,
    title: over
      ? `Budget used up until ${resets.toLocaleString()}`
      : "Tokens and estimated cost of your turns (UTC days and months)",
    over,
  };
}
