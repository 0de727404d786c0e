# Sourced by scripts/run-local (has $BIN, $PORT and the `pids` array): the tax-side queue.
# The relay publishes confirmation records to QUEUE_URL (empty: the database queue inside
# DATABASE_URL, so no broker is needed); the sandbox's tax-side consumer books them into
# instance/tax.sqlite3 and acknowledges them to the API as the `tax` staff account.
# On SQLite run exactly one relay (docs/tax-queue.md).
export TAX_PASSWORD="${TAX_PASSWORD:-tax12345}"
$BIN/flask --app wsgi staff create --username tax --role tax --password "$TAX_PASSWORD" \
  --if-missing >/dev/null
echo "outbox relay → ${QUEUE_URL:-database queue} (log instance/logs/relay.log)"
$BIN/flask --app wsgi outbox relay >instance/logs/relay.log 2>&1 &
pids+=($!)
echo "tax-side consumer (log instance/logs/tax-consumer.log)"
$BIN/python -m sandbox.tax --api "http://127.0.0.1:${PORT}" --username tax \
  --password "$TAX_PASSWORD" >instance/logs/tax-consumer.log 2>&1 &
pids+=($!)
