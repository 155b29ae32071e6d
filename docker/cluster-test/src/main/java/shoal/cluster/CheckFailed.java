package shoal.cluster;

/** An expectation of the cluster test that the cluster did not meet. */
final class CheckFailed extends RuntimeException {
  private static final long serialVersionUID = 1L;

  CheckFailed(String message) {
    super(message);
  }
}
