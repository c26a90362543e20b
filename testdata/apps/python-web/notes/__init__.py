"""A small notes service: an HTML page, a JSON API and a health check."""

import attr
from dateutil import parser as dateparser
from flask import Flask, jsonify, render_template, request
from requests.utils import quote

VERSION = "1"


@attr.s(frozen=True, auto_attribs=True)
class Note:
    title: str
    due: str

    def as_json(self):
        return {"title": self.title, "due": self.due, "link": "/notes/" + quote(self.title)}


def create_app():
    app = Flask(__name__)
    notes = [Note("write the docs", "2024-02-01"), Note("ship it", "2024-03-15")]

    @app.get("/")
    def index():
        return render_template("index.html", notes=notes, version=VERSION)

    @app.get("/api/notes")
    def list_notes():
        return jsonify([n.as_json() for n in notes])

    @app.post("/api/notes")
    def add_note():
        body = request.get_json(force=True)
        due = dateparser.parse(body["due"]).date().isoformat()
        note = Note(body["title"], due)
        notes.append(note)
        return jsonify(note.as_json()), 201

    @app.get("/health")
    def health():
        return "ok\n"

    return app
