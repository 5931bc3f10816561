"""The OpenAI-compatible HTTP server (`ovchat serve`); needs the `serve` extra (fastapi, uvicorn).

Importing this package imports nothing heavy: the app lives in ovchat.server.app.
"""
