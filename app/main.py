"""The FastAPI application: ``kennelgate serve`` runs ``create_app()`` under uvicorn."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Optional

from fastapi import FastAPI

from app.api import audit, decisions, doors, edge, frames, health, index, kennels, monitoring, species
from app.console import routes as console
from app.service import Service
from kennelgate.engine import Engine
from kennelgate.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Optional[Settings] = None, engine: Optional[Engine] = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service = Service(settings, engine)
        service.start()
        app.state.service = service
        log.info("KennelGate ready: %s", service.ready()[1])
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(
        title="KennelGate",
        version="0.1.0",
        summary="Which animal is at the kennel door? Devices post frames; staff manage kennels and species.",
        lifespan=lifespan,
    )
    edge.install(app)
    for module in (health, frames, kennels, doors, species, decisions, index, monitoring, audit):
        app.include_router(module.router)
    console.mount(app)
    return app
