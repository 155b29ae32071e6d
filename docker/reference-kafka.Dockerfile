# The reference image: Apache Kafka (the Maven Central jars of tests/java/reference-kafka) on a
# jlink'ed Java runtime, configured like a Shoal container (properties file plus KAFKA_*
# variables, same volume, same health check: Shoal's static binary runs `shoal healthcheck`
# against Kafka), so that `scripts/cluster test --reference` proves the compose files and the
# cluster test against Kafka. Nothing pulled; scripts/cluster builds the context
# (target/docker/reference-context).
FROM scratch
LABEL shoal.cluster.image="1"
COPY rootfs/ /
COPY --chown=65532:65532 data/ /var/lib/shoal/
USER 65532:65532
VOLUME ["/var/lib/shoal"]
EXPOSE 9092 9093 9094
HEALTHCHECK --interval=5s --timeout=4s --start-period=120s --retries=3 \
  CMD ["/shoal", "healthcheck", "--config", "/etc/shoal/server.properties"]
ENTRYPOINT ["/opt/java/bin/java", "-XX:-UsePerfData", "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", \
  "-Djava.awt.headless=true", "-cp", "/opt/kafka/libs/*", "shoal.cluster.ReferenceKafka"]
CMD ["--config", "/etc/shoal/server.properties"]
