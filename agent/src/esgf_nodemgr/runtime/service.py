"""Running the agent as a process: logging, TLS, servers, signals, the loop."""

from __future__ import annotations

import logging
import sys

from esgf_nodemgr.runtime import tls
from esgf_nodemgr.runtime.agent import Agent
from esgf_nodemgr.runtime.api import admin_routes, node_routes
from esgf_nodemgr.runtime.config import AgentConfig
from esgf_nodemgr.runtime.httpserver import HTTPServer

logger = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def run_agent(cfg: AgentConfig) -> None:
    """Start the agent described by ``cfg`` and run it until SIGTERM/SIGINT."""
    tls.check_key_permissions(cfg.tls.key)
    client = tls.client_settings(cfg.tls.cert, cfg.tls.key, cfg.tls.ca)
    server_ctx = tls.server_context(cfg.tls.cert, cfg.tls.key, cfg.tls.ca)
    agent = Agent(cfg, tls_settings=client, server_tls=server_ctx)
    node = HTTPServer(node_routes(agent), host=cfg.listen, port=cfg.port, tls=server_ctx,
                      max_connections=cfg.max_connections, max_body=cfg.max_body,
                      name=f"esgf-nm-{cfg.hostname}")
    admin = HTTPServer(admin_routes(agent), unix_path=cfg.admin_socket,
                       max_connections=16, max_body=8 << 20, name="esgf-nm-admin")
    try:
        node.start()
        agent.servers.append(node)
        admin.start()
        agent.servers.append(admin)
    except BaseException:
        agent.shutdown()
        raise
    agent.install_signal_handlers()
    logger.info("agent %s (%s) listening on %s, admin socket %s", cfg.hostname, cfg.role,
                node.address, cfg.admin_socket)
    agent.run()
    logger.info("agent %s stopped", cfg.hostname)
