#!/usr/bin/env bash
# Make sure the servers propdesk needs answer, starting the locally installed ones when stopped:
#   RabbitMQ on the host:port of PROPDESK_AMQP_URI (default 127.0.0.1:5672), with its management
#   API on 15672 (the tests make a vhost per test through it);
#   PostgreSQL on 127.0.0.1:5432 (the test suite runs the storage tests on it too).
# Usage: broker.sh [--postgres-optional]   (then a missing PostgreSQL only warns, unless a
#                                           <SERVICE>_DB_URL points at PostgreSQL)
# When a server cannot be started here, says exactly what to run, and fails.
set -euo pipefail

postgres_required=yes
if [[ "${1:-}" == "--postgres-optional" ]] && ! env | grep -q '^[A-Z]*_DB_URL=postgres'; then
    postgres_required=no
fi

amqp_uri=${PROPDESK_AMQP_URI:-pyamqp://guest:guest@127.0.0.1:5672/}
amqp_address=${amqp_uri#*://}
amqp_address=${amqp_address#*@}
amqp_address=${amqp_address%%/*}
amqp_host=${amqp_address%:*}
amqp_port=${amqp_address##*:}
[[ "$amqp_port" == "$amqp_address" ]] && amqp_port=5672
management_port=15672
pg_host=127.0.0.1
pg_port=5432

answers() {  # answers HOST PORT: something accepts TCP connections there
    timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

wait_for() {  # wait_for WHAT HOST PORT SECONDS
    local deadline=$((SECONDS + $4))
    until answers "$2" "$3"; do
        if ((SECONDS >= deadline)); then
            echo "broker: $1 still not answering on $2:$3 after $4 s" >&2
            return 1
        fi
        sleep 1
    done
}

is_local() { [[ "$1" == 127.0.0.1 || "$1" == localhost ]]; }

ensure_rabbitmq() {
    if ! answers "$amqp_host" "$amqp_port"; then
        if ! is_local "$amqp_host" || ! command -v rabbitmq-server >/dev/null; then
            cat >&2 <<EOF
broker: RabbitMQ is not answering on $amqp_host:$amqp_port. Start it, then run this again:
    sudo apt-get install rabbitmq-server && sudo rabbitmq-server -detached
  or, with Docker:
    docker run -d --name propdesk-rabbitmq -p 5672:5672 -p 15672:15672 rabbitmq:3-management
  (or point PROPDESK_AMQP_URI at a running broker)
EOF
            return 1
        fi
        echo "broker: starting RabbitMQ (rabbitmq-server -detached)"
        rabbitmq-server -detached
        wait_for RabbitMQ "$amqp_host" "$amqp_port" 60
    fi
    echo "broker: RabbitMQ answers on $amqp_host:$amqp_port"

    if answers "$amqp_host" "$management_port"; then
        return 0
    fi
    if is_local "$amqp_host" && command -v rabbitmq-plugins >/dev/null; then
        echo "broker: enabling the RabbitMQ management API (rabbitmq-plugins enable rabbitmq_management)"
        rabbitmq-plugins enable rabbitmq_management >/dev/null
        wait_for "the RabbitMQ management API" "$amqp_host" "$management_port" 60
    else
        echo "broker: the RabbitMQ management API is not answering on $amqp_host:$management_port;" \
             "run: rabbitmq-plugins enable rabbitmq_management" >&2
        return 1
    fi
}

ensure_postgres() {
    if answers "$pg_host" "$pg_port"; then
        echo "broker: PostgreSQL answers on $pg_host:$pg_port"
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null && [[ -d /etc/postgresql ]]; then
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        echo "broker: starting PostgreSQL (pg_ctlcluster --skip-systemctl-redirect $version main start)"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start
        wait_for PostgreSQL "$pg_host" "$pg_port" 60
        return
    fi
    local advice="broker: PostgreSQL is not answering on $pg_host:$pg_port. Start it:
    sudo apt-get install postgresql && sudo pg_ctlcluster --skip-systemctl-redirect \$(ls /etc/postgresql) main start
  or, with Docker:
    docker run -d --name propdesk-postgres -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:15"
    if [[ $postgres_required == no ]]; then
        echo "$advice" >&2
        echo "broker: carrying on without it (every service is on SQLite)" >&2
        return 0
    fi
    echo "$advice" >&2
    return 1
}

ensure_rabbitmq
ensure_postgres
