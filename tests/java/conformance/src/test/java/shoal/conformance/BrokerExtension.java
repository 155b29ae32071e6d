package shoal.conformance;

import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.kafka.clients.admin.Admin;
import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import shoal.conformance.broker.BrokerUnderTest;
import shoal.conformance.broker.Brokers;
import shoal.conformance.broker.ClusterSpec;

/**
 * Gives a test class the broker selected with {@code -Dbroker}, started before its first test.
 *
 * <p>{@link #shared} brokers are started once per spec for the whole run and closed when the run
 * ends (classes with the same spec share one). {@link #dedicated} brokers belong to one class
 * (for scenarios that stop, kill or restart the broker) and are closed after it. A broker that
 * failed to start is not started again for every class: the first failure is rethrown.
 */
public final class BrokerExtension implements BeforeAllCallback {
  private static final ExtensionContext.Namespace NAMESPACE =
      ExtensionContext.Namespace.create(BrokerExtension.class);

  private final ClusterSpec spec;
  private final boolean shared;
  private volatile Running running;

  private BrokerExtension(ClusterSpec spec, boolean shared) {
    this.spec = spec;
    this.shared = shared;
  }

  public static BrokerExtension shared(ClusterSpec spec) {
    return new BrokerExtension(spec, true);
  }

  public static BrokerExtension dedicated(ClusterSpec spec) {
    return new BrokerExtension(spec, false);
  }

  @Override
  public void beforeAll(ExtensionContext context) {
    ExtensionContext owner = shared ? context.getRoot() : context;
    Running r =
        owner.getStore(NAMESPACE).getOrComputeIfAbsent(spec, s -> Running.start(spec), Running.class);
    if (r.failure != null) {
      throw new IllegalStateException("the broker for " + spec + " failed to start", r.failure);
    }
    running = r;
  }

  public BrokerUnderTest broker() {
    if (running == null) {
      throw new IllegalStateException("broker not started: register the extension with @RegisterExtension");
    }
    return running.broker;
  }

  /** An Admin client bound to this broker, closed with it. */
  public Admin admin() {
    broker();
    return running.admins.computeIfAbsent("default", k -> Clients.admin(running.broker));
  }

  public String bootstrap() {
    return broker().bootstrapServers();
  }

  /** Closes the shared Admin (e.g. before a restart, so that it reconnects cleanly). */
  public void resetAdmin() {
    Admin a = running.admins.remove("default");
    if (a != null) {
      a.close();
    }
  }

  /** The store value: a started broker (or why it did not start) plus its clients. */
  static final class Running implements ExtensionContext.Store.CloseableResource, AutoCloseable {
    final BrokerUnderTest broker;
    final RuntimeException failure;
    final Map<String, Admin> admins = new ConcurrentHashMap<>();

    private Running(BrokerUnderTest broker, RuntimeException failure) {
      this.broker = broker;
      this.failure = failure;
    }

    static Running start(ClusterSpec spec) {
      try {
        return new Running(Brokers.start(spec), null);
      } catch (RuntimeException e) {
        return new Running(null, e);
      }
    }

    @Override
    public void close() {
      admins.values().forEach(Admin::close);
      admins.clear();
      if (broker != null) {
        broker.close();
      }
    }
  }
}
