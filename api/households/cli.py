from flask.cli import AppGroup

roster_cli = AppGroup("roster", help="Roster import.")
demo_cli = AppGroup("demo", help="Demo district.")
