"""The staff console: server-rendered pages (Jinja2) with a little plain JavaScript, all served
by the app itself (no CDN, no build step). Changes go through the same REST API as devices and
scripts use, signed in by an HttpOnly cookie (see ``app.api.deps``)."""
