from api.extensions.smorest import Blueprint

blp = Blueprint("households", __name__, url_prefix="/api/v1/households", description="家庭与成员")
