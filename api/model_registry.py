"""Imports every model module so `Base.metadata` is complete (Alembic, tests, workers)."""

from api.audit import models as audit_models  # noqa: F401
from api.auth import models as auth_models  # noqa: F401
from api.backpay import models as backpay_models  # noqa: F401
from api.collection import models as collection_models  # noqa: F401
from api.departments import models as department_models  # noqa: F401
from api.households import models as household_models  # noqa: F401
from api.payments import models as payment_models  # noqa: F401
from api.payments.outbox import models as outbox_models  # noqa: F401
from api.reconciliation import models as reconciliation_models  # noqa: F401
