"""The fault suite (`chatbot chaos`): the whole stack as separate processes, sessions over
JSON, SSE and WebSocket clients that retry as the API tells them, one fault at a time,
every acknowledged message checked in Postgres row by row."""
