# Sourced by scripts/run-local (with $BIN and the pids array): the payments worker, which
# every few seconds asks the gateways about orders still open (a lost notification costs
# nothing), closes expired orders, and sends due refunds. Logs to instance/logs/payments.log.
echo "payments worker (reconcile-open, expire, process-refunds; log instance/logs/payments.log)"
$BIN/flask --app wsgi payments worker --interval "${PAYMENTS_WORKER_INTERVAL:-15}" \
  >instance/logs/payments.log 2>&1 &
pids+=($!)
