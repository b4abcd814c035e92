from kennelgate.cli import app

app()
