"""``kennelgate`` command line: one module per command group (models, gallery, evaluate,
service); this module only assembles them."""

from __future__ import annotations

import typer

from kennelgate.cli import common, data, evaluate, gallery, models, service, tune
from kennelgate.cli.common import _library  # noqa: F401  (scripts and tests open the library this way)

app = typer.Typer(help="KennelGate: which animal is at the kennel door? (retrieval + open-set)", no_args_is_help=True)
app.callback()(common.main)
app.add_typer(models.model_app, name="model")
app.add_typer(gallery.gallery_app, name="gallery")
app.add_typer(data.data_app, name="data")
app.add_typer(service.db_app, name="db")
app.add_typer(service.index_app, name="index")
app.add_typer(service.token_app, name="token")
app.add_typer(models.cascade_app, name="cascade")
app.add_typer(models.health_app, name="health")
app.command()(evaluate.classify)
app.command("eval")(evaluate.evaluate_cmd)
app.command()(evaluate.bench)
app.command()(tune.tune)
app.command()(service.serve)
