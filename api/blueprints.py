"""The explicit, ordered list of API blueprints (BEMServer style)."""

from __future__ import annotations

from api.extensions.smorest import Api


def register_blueprints(api: Api) -> None:
    from api.auth.routes import blp as auth_blp
    from api.households.quote_routes import blp as quote_blp
    from api.households.routes import blp as households_blp

    for blp in (auth_blp, quote_blp, households_blp):
        api.register_blueprint(blp)
    from api.payments.routes import blp as payments_blp
    from api.payments.routes import finance_blp as payments_finance_blp

    for blp in (payments_blp, payments_finance_blp):
        api.register_blueprint(blp)
    from api.payments.outbox.routes import blp as tax_blp

    api.register_blueprint(tax_blp)
    from api.backpay.routes import blp as backpay_blp

    api.register_blueprint(backpay_blp)
    from api.reconciliation.routes import blp as reconciliation_blp

    api.register_blueprint(reconciliation_blp)
    from api.oversight.routes import blp as oversight_blp

    api.register_blueprint(oversight_blp)
    from api.collection.routes import blp as collection_blp

    api.register_blueprint(collection_blp)
    from api.departments.routes import blp as departments_blp

    api.register_blueprint(departments_blp)
