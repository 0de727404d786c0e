# Sourced by scripts/run-local: one staff account per department (sandbox only; README
# "Departments"), each scoped to its own lists and 代缴 batch.
for spec in minzheng:civil_affairs canlian:disabled_federation fupin:poverty_office \
  weijian:health_commission gongan:police; do
  user="${spec%%:*}"
  $BIN/flask --app wsgi staff create --username "$user" --role department \
    --department "${spec#*:}" --password "${user}123" --if-missing >/dev/null
done
echo "department accounts: minzheng, canlian, fupin, weijian, gongan (password <username>123)"
