# smtp-graph-relay: SMTP in, Microsoft Graph sendMail out.
# Build:  docker build -t smtp-graph-relay .        (or: podman build --pull=never ...)
# Run:    see deploy/docker-compose.yml and docs/container.md.

# --- build: TypeScript with the dev dependencies -------------------------------------------
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

# --- production dependencies only ------------------------------------------------------------
FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------------
FROM node:24-slim
ENV NODE_ENV=production \
    # Every command finds the configuration without flags: `podman exec … node dist/cli.js queue list`.
    RELAY_CONFIG=/etc/smtp-graph-relay/relay.yaml \
    # Shorter than `docker stop`'s default 10 s, so a plain stop still drains; compose and
    # Kubernetes raise both together (stop_grace_period / terminationGracePeriodSeconds).
    RELAY_SHUTDOWN_GRACE_MS=8000
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config/relay.container.yaml /etc/smtp-graph-relay/relay.yaml
# The spool (and the capture folder of capture mode) must belong to the unprivileged user; a new named
# volume copies this ownership.
RUN mkdir -p /var/spool/smtp-graph-relay /var/lib/smtp-graph-relay/capture \
 && chown node:node /var/spool/smtp-graph-relay /var/lib/smtp-graph-relay/capture \
 && chmod 750 /var/spool/smtp-graph-relay /var/lib/smtp-graph-relay/capture
USER node:node
VOLUME ["/var/spool/smtp-graph-relay", "/var/lib/smtp-graph-relay/capture"]
EXPOSE 2525 8025
# No curl in -slim: node's own fetch. Liveness only; readiness (/readyz) is for orchestrators.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.RELAY_ADMIN_PORT||8025)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# node is PID 1: the CLI handles SIGTERM/SIGINT itself (drain, then exit 0) and starts no child
# processes, so there are no zombies to reap and no init (tini, --init) is needed.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["run"]
