from flask.cli import AppGroup

staff_cli = AppGroup("staff", help="Staff accounts.")
