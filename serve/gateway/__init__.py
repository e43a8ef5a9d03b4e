"""The FastAPI ingress: OpenAI audio REST API, SSE, realtime WebSocket, models, health, metrics."""
