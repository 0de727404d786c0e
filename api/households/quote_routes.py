from api.extensions.smorest import Blueprint

blp = Blueprint("premiums", __name__, url_prefix="/api/v1/premiums", description="保费试算")
