package shoal.conformance.broker;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/** A point in time by which a condition must hold; polling instead of sleeping and hoping. */
public final class Deadline {
  private static final long POLL_MIN_MS = 10;
  private static final long POLL_MAX_MS = 250;

  private final long deadlineNanos;
  private final Duration budget;

  private Deadline(Duration budget) {
    this.budget = budget;
    this.deadlineNanos = System.nanoTime() + budget.toNanos();
  }

  public static Deadline in(Duration budget) {
    return new Deadline(budget);
  }

  public boolean expired() {
    return System.nanoTime() - deadlineNanos >= 0;
  }

  public Duration remaining() {
    return Duration.ofNanos(Math.max(0, deadlineNanos - System.nanoTime()));
  }

  public Duration budget() {
    return budget;
  }

  /**
   * Polls {@code condition} with a short growing backoff until it holds; throws an
   * {@link IllegalStateException} naming {@code what} when the deadline passes first.
   */
  public void await(String what, BooleanSupplier condition) {
    long pollMs = POLL_MIN_MS;
    while (true) {
      if (condition.getAsBoolean()) {
        return;
      }
      if (expired()) {
        throw new IllegalStateException("timed out after " + budget + " waiting for " + what);
      }
      pause(Math.min(pollMs, Math.max(1, remaining().toMillis())));
      pollMs = Math.min(POLL_MAX_MS, pollMs * 2);
    }
  }

  /** Convenience: wait for a condition with a fresh deadline. */
  public static void awaitWithin(Duration budget, String what, BooleanSupplier condition) {
    in(budget).await(what, condition);
  }

  private static void pause(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException("interrupted while waiting", e);
    }
  }
}
