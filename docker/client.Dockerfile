# The cluster test's client image: a jlink'ed Java runtime from the build machine's JDK, the
# shared libraries it loads (copied from the same machine), and the cluster-test jars, on an
# empty root filesystem: nothing pulled. scripts/cluster builds the context
# (target/docker/client-context/rootfs).
FROM scratch
LABEL shoal.cluster.image="1"
COPY rootfs/ /
USER 65532:65532
ENV JAVA_HOME=/opt/java
ENTRYPOINT ["/opt/java/bin/java", "-XX:-UsePerfData", "-Xmx256m", "-Dsun.net.inetaddr.ttl=1", \
  "-cp", "/opt/cluster-test/*", "shoal.cluster.ClusterClient"]
CMD ["--help"]
