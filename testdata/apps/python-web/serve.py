"""Serves the notes app with waitress on $PORT (default 8080), on every interface."""

import os

from waitress import serve

from notes import create_app

if __name__ == "__main__":
    serve(create_app(), host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
