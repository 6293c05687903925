#!/usr/bin/env bash
# One replica against two behind nginx (deploy/nginx/proxy.conf), on PostgreSQL:
# GET /api/v1/me and client_credentials, with one replica direct (no nginx) for reference.
# On a 2-core machine that also runs wrk, nginx and PostgreSQL, a second replica cannot
# add CPU: this shows what the balancer and a second process cost, not a speed-up.
# Usage: BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test benches/replicas.sh
#        (env: DURATION=10s CONC=32 ROUNDS=3)
source "$(dirname "$0")/lib.sh"
postgres_schema || { echo "set BENCH_POSTGRES_URL=postgres://…" >&2; exit 2; }
[ -x /usr/sbin/nginx ] || { echo "needs nginx (Debian nginx-light)" >&2; exit 2; }
LB_PORT=$((PORT + 10)) SECOND_PORT=$((PORT + 2))
export GATEHOUSE_DATABASE_URL=$pg_url GATEHOUSE_ISSUER="http://127.0.0.1:$LB_PORT"
"$gh" migrate >/dev/null

client=$("$gh" client create --name bench --type confidential --grant client_credentials --scope api --json)
field() { printf '%s' "$client" | python3 -c "import json, sys; print(json.load(sys.stdin)['$1'])"; }
id=$(field client_id) secret=$(field client_secret)
basic="Authorization: Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
printf 'wrk.method = "POST"\nwrk.body = "grant_type=client_credentials"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n' > "$work/token.lua"

start_gatehouse
GATEHOUSE_LISTEN="127.0.0.1:$SECOND_PORT" GATEHOUSE_MANAGEMENT_LISTEN=127.0.0.1:0 "$gh" serve >/dev/null 2>&1 &
pids+=("$!")
wait_ready "http://127.0.0.1:$SECOND_PORT/readyz" 10

nginx_pid=
start_nginx() { # PORTS...
  [ -z "$nginx_pid" ] || { kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; }
  local servers="" p
  for p in "$@"; do servers+="server 127.0.0.1:$p max_fails=1 fail_timeout=10s; "; done
  mkdir -p "$work/nginx"
  cat > "$work/nginx/nginx.conf" <<CONF
daemon off; master_process off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/f; uwsgi_temp_path $work/nginx/u; scgi_temp_path $work/nginx/s;
  upstream gatehouse { $servers keepalive 64; }
  server { listen 127.0.0.1:$LB_PORT; location / { include $PWD/deploy/nginx/proxy.conf; } } }
CONF
  /usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
  nginx_pid=$!; pids+=("$nginx_pid")
  wait_ready "http://127.0.0.1:$LB_PORT/healthz" 10
}

token=$(curl -sf -H "$basic" -d grant_type=client_credentials "http://127.0.0.1:$PORT/oauth2/token" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
declare -A results
measure() { # LABEL PORT
  results["$1 me"]+="$(load "$1 me" "http://127.0.0.1:$2/api/v1/me" -H "Authorization: Bearer $token") "
  results["$1 token"]+="$(load "$1 token" "http://127.0.0.1:$2/oauth2/token" -s "$work/token.lua" -H "$basic") "
}
for round in $(seq "$ROUNDS"); do
  measure direct "$PORT"
  start_nginx "$PORT"; measure "nginx+1" "$LB_PORT"
  start_nginx "$PORT" "$SECOND_PORT"; measure "nginx+2" "$LB_PORT"
done
for label in direct nginx+1 nginx+2; do
  for case in me token; do
    echo "$label $case median req/s=$(printf '%s\n' ${results["$label $case"]} | median)"
  done
done
echo "(wrk, $CONC connections, $ROUNDS rounds of $DURATION, PostgreSQL)"
