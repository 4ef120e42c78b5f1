#!/usr/bin/env bash
# A floor of three stations on one machine (docs/fleet.md, "Three stations on one machine"):
# a PostgreSQL catalogue, a shared folder the stations publish to, three `collector collect`
# processes on one plan, and the floor manager's page. Everything lives under HALL (default /tmp/hall).
#   bash scripts/fleet_three_stations.sh [HALL]
# Needs Debian's postgresql package (scripts/install_test_deps.sh installs it) and the fleet extra.
set -euo pipefail
HALL=$(realpath -m "${1:-/tmp/hall}")
PORT=${HALL_PG_PORT:-55432}
COLLECTOR=${COLLECTOR:-collector}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
mkdir -p "$HALL/shared"

# 1. The catalogue server. PostgreSQL refuses to run as root: as root it runs as the `postgres` account.
as_pg=()
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); mkdir -p "$HALL/pg"; chown postgres "$HALL/pg"; fi
if [ ! -f "$HALL/pg/data/PG_VERSION" ]; then
  "${as_pg[@]}" "$PG_BIN/initdb" -D "$HALL/pg/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
fi
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$HALL/pg/data" -l "$HALL/pg/server.log" -w \
  -o "-p $PORT -k $HALL/pg -c listen_addresses=127.0.0.1" start >/dev/null
"$PG_BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres hall 2>/dev/null || true   # once
URL="postgresql://postgres@127.0.0.1:$PORT/hall"
echo "catalogue: $URL"

# 2. One plan for the floor: the demo plan (2 tasks x 2 lighting x 2 weights, one good take a cell),
#    every kept take published to the shared folder and verified there.
sed "s#^name: demo#name: hall_demo#" "$(dirname "$0")/../configs/plans/demo.yaml" > "$HALL/plan.yaml"
echo "publish: $HALL/shared" >> "$HALL/plan.yaml"

# 3. The floor manager's page (stop it with Ctrl-C or kill when done).
"$COLLECTOR" fleet "$URL" --plan "$HALL/plan.yaml" --port "${HALL_FLEET_PORT:-8791}" > "$HALL/fleet.log" 2>&1 &
FLEET=$!
trap 'kill $FLEET 2>/dev/null || true' EXIT

# 4. Three stations, each with its own local folder, sharing the plan through the catalogue's claims.
for n in 1 2 3; do
  "$COLLECTOR" collect --plan "$HALL/plan.yaml" --out "$HALL/st$n" --station "st$n" --catalog "$URL" \
    --no-progress > "$HALL/st$n.log" 2>&1 &
done
sleep 3; grep -h "^fleet: " "$HALL/fleet.log" || true
wait $(jobs -p | grep -v "^$FLEET$")  || true

# 5. What the floor did: each cell once, every take in the shared folder.
"$COLLECTOR" catalog summary "$HALL/st1"
echo "published: $(find "$HALL/shared" -name '*.hdf5' | wc -l) episode file(s) in $HALL/shared"
echo "stop the server: ${as_pg[*]} $PG_BIN/pg_ctl -D $HALL/pg/data stop"
