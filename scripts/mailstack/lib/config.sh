# shellcheck shell=bash
# Sourced by mailstack.sh (uses its globals: DOMAINS, IP, USERS, PORT, STATE, ...).
# shellcheck disable=SC2153  # globals are assigned in mailstack.sh
# Generates the stack: mail user, test CA and certificates, passwords, Postfix and Dovecot
# configuration, passwords.env and stack.json.

# ---------------------------------------------------------------------------------------
# generation: users, TLS, configs, stack.json
# ---------------------------------------------------------------------------------------

ensure_mail_user() {
  id "$MAIL_USER" >/dev/null 2>&1 ||
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$MAIL_USER"
  MAIL_UID=$(id -u "$MAIL_USER")
  MAIL_GID=$(id -g "$MAIL_USER")
}

# Test CA (kept across restarts so clients that cached it keep working).
gen_ca() {
  mkdir -p "$CA_DIR"
  [[ -s $CA_CERT && -s $CA_DIR/ca.key ]] && return 0
  log "generating test CA"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$CA_DIR/ca.key" -out "$CA_CERT" -days 3650 -subj "/CN=mailpeer test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 600 "$CA_DIR/ca.key"
  chmod 644 "$CA_CERT"
}

# Server certificate: SAN DNS:<domain>, DNS:mail.<domain>, IP:<address>, IP:<lab address> (the
# lab address always, so a certificate stays valid whether or not the NAT lab is up). Reused while
# it is newer than the CA and has these SANs (tls/server.san records them; valid 825 days).
gen_server_cert() {
  local d=$1 san="subjectAltName=DNS:$1,DNS:mail.$1,IP:${IP[$1]},IP:${LAB_IP[$1]}" old=""
  [[ -s $P_DIR/tls/server.san ]] && read -r old <"$P_DIR/tls/server.san"
  [[ -s $TLS_CERT && -s $TLS_KEY && $TLS_CERT -nt $CA_CERT && $old == "$san" ]] && return 0
  mkdir -p "$P_DIR/tls"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -keyout "$TLS_KEY" -out "$P_DIR/tls/server.csr" -subj "/CN=mail.$d" 2>/dev/null
  openssl x509 -req -in "$P_DIR/tls/server.csr" -CA "$CA_CERT" -CAkey "$CA_DIR/ca.key" \
    -CAcreateserial -CAserial "$CA_DIR/ca.srl" -days 825 -sha256 -out "$TLS_CERT" \
    -extfile <(printf '%s\n' \
      "$san" \
      "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth") 2>/dev/null
  rm -f "$P_DIR/tls/server.csr"
  chmod 600 "$TLS_KEY"
  echo "$san" >"$P_DIR/tls/server.san"
}

# render TEMPLATE OUT: fill @NAME@ placeholders from the current provider's variables
# (LISTEN_IP: the address a master-inet.cf fragment is rendered for).
render() {
  local listen=${IP[$DOMAIN]}
  [[ -z ${LAB_ON[$DOMAIN]:-} ]] || listen+=", ${LAB_ON[$DOMAIN]}"
  sed -e "s|@DOMAIN@|$DOMAIN|g" -e "s|@IP@|${IP[$DOMAIN]}|g" \
    -e "s|@LISTEN@|$listen|g" -e "s|@LISTEN_IP@|${LISTEN_IP:-}|g" \
    -e "s|@STATE_DIR@|$STATE|g" -e "s|@PF_CONF@|$PF_CONF|g" \
    -e "s|@PF_QUEUE@|$PF_QUEUE|g" -e "s|@PF_DATA@|$PF_DATA|g" \
    -e "s|@DOVECOT_RUN@|$DOVECOT_RUN|g" -e "s|@DOVECOT_STATE@|$DOVECOT_STATE|g" \
    -e "s|@USERS_FILE@|$USERS_FILE|g" -e "s|@MAIL_DIR@|$MAIL_DIR|g" \
    -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@TLS_CERT@|$TLS_CERT|g" -e "s|@TLS_KEY@|$TLS_KEY|g" \
    -e "s|@CA_CERT@|$CA_CERT|g" -e "s|@MAIL_UID@|$MAIL_UID|g" -e "s|@MAIL_GID@|$MAIL_GID|g" \
    -e "s|@OAUTH2_CONF@|$OAUTH2_CONF|g" -e "s|@OAUTH2_INTROSPECTION@|$OAUTH2_INTROSPECTION|g" \
    "$TEMPLATE_DIR/$1" >"$2"
}

# configure_provider DOMAIN: directories, certificate, users file, Postfix + Dovecot config.
# Reads PASSWORD[user@domain] (set by gen_passwords).
configure_provider() {
  DOMAIN=$1
  provider_paths "$DOMAIN"
  mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF_DATA" "$DOVECOT_RUN" "$DOVECOT_STATE" "$MAIL_DIR" \
    "$LOG_DIR"
  chmod 755 "$STATE" "$P_DIR"
  chown postfix:postfix "$PF_DATA"
  chown "$MAIL_USER:$MAIL_USER" "$MAIL_DIR"
  chmod 700 "$MAIL_DIR"
  gen_server_cert "$DOMAIN"

  # Postfix
  render main.cf "$PF_CONF/main.cf"
  # master.cf: the inet listeners once per address (loopback, and the lab address when bound).
  local addr
  : >"$PF_CONF/master-inet.cf"
  for addr in "${IP[$DOMAIN]}" ${LAB_ON[$DOMAIN]:-}; do
    LISTEN_IP=$addr render master-inet.cf "$PF_CONF/master-inet.part"
    cat "$PF_CONF/master-inet.part" >>"$PF_CONF/master-inet.cf"
  done
  render master.cf "$PF_CONF/master.cf.tmp"
  sed -e "/^@INET_LISTENERS@\$/{r $PF_CONF/master-inet.cf" -e 'd' -e '}' "$PF_CONF/master.cf.tmp" \
    >"$PF_CONF/master.cf"
  rm -f "$PF_CONF/master-inet.cf" "$PF_CONF/master-inet.part" "$PF_CONF/master.cf.tmp"
  local other u
  : >"$PF_CONF/transport"
  for other in "${DOMAINS[@]}"; do
    [[ $other == "$DOMAIN" ]] || printf '%s smtp:[%s]:25\n' "$other" "${IP[$other]}" >>"$PF_CONF/transport"
  done
  : >"$PF_CONF/vmailbox"
  for u in ${USERS[$DOMAIN]}; do printf '%s@%s OK\n' "$u" "$DOMAIN" >>"$PF_CONF/vmailbox"; done
  printf 'postmaster@%s OK\n' "$DOMAIN" >>"$PF_CONF/vmailbox"

  # Dovecot (passwords in the clear: random per start, also in passwords.env; root-only).
  render dovecot.conf "$DOVECOT_CONF"
  # The oauth2 passdb asks the introspection endpoint (RFC 7662) whether a token is active and
  # whose it is; the user must also exist in the users file (the userdb).
  cat >"$OAUTH2_CONF" <<OAUTH2
introspection_mode = post
introspection_url = $OAUTH2_INTROSPECTION
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
OAUTH2
  chgrp dovecot "$OAUTH2_CONF"
  chmod 640 "$OAUTH2_CONF"
  (
    umask 027
    : >"$USERS_FILE"
    for u in ${USERS[$DOMAIN]}; do
      printf '%s@%s:{PLAIN}%s::::::\n' "$u" "$DOMAIN" "${PASSWORD[$u@$DOMAIN]}" >>"$USERS_FILE"
    done
  )
  chgrp dovecot "$USERS_FILE"
}

declare -A PASSWORD=()
gen_passwords() {
  local d u random i=0
  random=$(openssl rand -hex 240)   # one process for all: 24 hex digits (96 bits) each
  for d in "${DOMAINS[@]}"; do
    for u in ${USERS[$d]}; do PASSWORD[$u@$d]=${random:i:24}; i=$((i + 24)); done
  done
}

# passwords.env (shell-sourceable) and stack.json (machine-readable), both mode 0600.
write_descriptions() {
  local d u first_p=1 first_u
  (
    umask 077
    {
      echo "# mailpeer mail stack: generated by mailstack.sh start; passwords change on every start"
      echo "MAILSTACK_DIR=$STATE"
      echo "MAILSTACK_CA_FILE=$CA_CERT"
      for d in "${DOMAINS[@]}"; do
        for u in ${USERS[$d]}; do env_name "$u" "$d"; echo "$ENV_NAME=${PASSWORD[$u@$d]}"; done
      done
    } >"$STATE/passwords.env.tmp"
    {
      printf '{\n  "version": 1,\n  "stateDir": "%s",\n  "caFile": "%s",\n  "oauth2Introspection": "%s",\n  "providers": [' \
        "$STATE" "$CA_CERT" "$OAUTH2_INTROSPECTION"
      for d in "${DOMAINS[@]}"; do
        provider_paths "$d"
        ((first_p)) || printf ','
        first_p=0
        printf '\n    {\n      "domain": "%s",\n      "ip": "%s",\n' "$d" "${IP[$d]}"
        [[ -z ${LAB_ON[$d]:-} ]] || printf '      "labIp": "%s",\n' "${LAB_ON[$d]}"
        printf '      "hostname": "mail.%s",\n' "$d"
        printf '      "ports": {"smtp": %s, "submission": %s, "smtps": %s, "imap": %s, "imaps": %s, "pop3": %s, "pop3s": %s},\n' \
          "${PORT[smtp]}" "${PORT[submission]}" "${PORT[smtps]}" "${PORT[imap]}" \
          "${PORT[imaps]}" "${PORT[pop3]}" "${PORT[pop3s]}"
        printf '      "caFile": "%s",\n      "users": [' "$CA_CERT"
        first_u=1
        for u in ${USERS[$d]}; do
          ((first_u)) || printf ','
          first_u=0
          printf '\n        {"address": "%s@%s", "user": "%s@%s", "password": "%s", "maildir": "%s/%s/Maildir"}' \
            "$u" "$d" "$u" "$d" "${PASSWORD[$u@$d]}" "$MAIL_DIR" "$u"
        done
        printf '\n      ]\n    }'
      done
      printf '\n  ]\n}\n'
    } >"$STATE/stack.json.tmp"
  )
  mv -f "$STATE/passwords.env.tmp" "$STATE/passwords.env"
  mv -f "$STATE/stack.json.tmp" "$STATE/stack.json"
}
