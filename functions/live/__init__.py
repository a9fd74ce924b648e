"""Live push over an API Gateway WebSocket API: the connection routes and the pusher."""
