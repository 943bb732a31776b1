"""Request names: locust groups its statistics by them, one line per step, numbered in the
order the steps happen. Kept apart from `users` so code outside locust can read them."""

CREATE_SESSION = "1 create session"
SEND_MESSAGE = "2 send message"
TOLD_TO_RETRY = "2 send message: 503, asked again with the same id"
SSE_ACCEPTED = "2 send message [sse]: accepted"
SSE_FIRST_TOKEN = "3 first token [sse]"
SSE_FINAL = "4 final [sse]"
