"""The Alembic revisions build exactly the schema the models declare, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.db import Base
from tests.conftest import migrated_app


def test_migrations_match_the_models(database_url: str) -> None:
    engine = migrated_app(database_url).extensions["database"].engine
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == [], "a model changed without an Alembic revision (flask db migrate)"
