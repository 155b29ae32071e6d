# The shoal broker image: one static binary on an empty root filesystem, nothing pulled.
# scripts/cluster builds the context (target/docker/shoal-context): rootfs/ holds /shoal
# (static-pie, glibc linked in) and /etc/shoal/server.properties; data/ is empty.
#
# Configuration, each replacing the one before: the properties file given with --config (the
# default below, or one mounted over it), KAFKA_* environment variables (the apache/kafka image's
# names: KAFKA_NODE_ID, KAFKA_ADVERTISED_LISTENERS, ...), then --override key=value arguments.
FROM scratch
LABEL shoal.cluster.image="1"
COPY rootfs/ /
COPY --chown=65532:65532 data/ /var/lib/shoal/
USER 65532:65532
VOLUME ["/var/lib/shoal"]
EXPOSE 9092 9093 9094
# No shell in the image: `shoal healthcheck` reads the same file and KAFKA_* variables as the
# broker (Docker runs it with the container's environment), speaks Kafka to the listener it
# finds there (inter.broker.listener.name, else the first client listener; a wildcard host on
# 127.0.0.1) and requires this node.id in the cluster's Metadata. It ends within 3 s.
HEALTHCHECK --interval=5s --timeout=4s --start-period=60s --retries=3 \
  CMD ["/shoal", "healthcheck", "--config", "/etc/shoal/server.properties"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/shoal"]
CMD ["--config", "/etc/shoal/server.properties"]
