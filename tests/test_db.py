"""The database layer keeps health data out of error messages."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from app.db import create_engine, session_factory, unit_of_work, utcnow
from app.scheduling.models import Appointment
from tests.conftest import create_schema


async def test_db_errors_do_not_echo_statement_parameters(database_url: str) -> None:
    await create_schema(database_url)
    engine = create_engine(database_url)
    start = utcnow()
    try:
        with pytest.raises(IntegrityError) as failure:
            async with unit_of_work(session_factory(engine)) as session:
                session.add(
                    Appointment(
                        specialist_id=424242,  # no such user: the foreign key fails
                        gp_id=424242,
                        starts_at=start,
                        ends_at=start + timedelta(minutes=30),
                        patient_name="Erika Geheim",
                        patient_birth_date=date(1950, 1, 1),
                        patient_contact="erika@example.org",
                        clinical_question="Verdacht auf etwas Vertrauliches",
                    )
                )
        message = str(failure.value)
        assert "Erika Geheim" not in message
        assert "Vertrauliches" not in message
        assert "hidden" in message.lower()
    finally:
        await engine.dispose()
