# Sourced by scripts/run-local: demo accounts for agent collection (代办员收款, docs/collection.md):
# one agent per village of 西集镇 (agent-<village code> / agent123) and the town office
# (town-370406101 / town1234). Sandbox only.
$BIN/flask --app wsgi collection demo-staff --town "${COLLECTION_DEMO_TOWN:-西集镇}"
