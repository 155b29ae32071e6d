package shoal.conformance;

import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.time.Duration;
import org.apache.kafka.common.requests.AbstractRequest;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.RequestHeader;

/**
 * A plain TCP connection speaking Kafka's framing (int32 size, then header and body), for
 * scenarios that need exact control of the bytes: malformed frames, unsupported versions,
 * pipelining. Requests and responses are encoded with kafka-clients' own message classes.
 */
final class RawConnection implements AutoCloseable {
  private final Socket socket;
  private final DataInputStream in;
  private final OutputStream out;
  private int nextCorrelationId = 1;

  RawConnection(String hostPort) throws IOException {
    int colon = hostPort.lastIndexOf(':');
    socket = new Socket();
    socket.connect(
        new InetSocketAddress(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1))), 5_000);
    socket.setSoTimeout(20_000);
    socket.setTcpNoDelay(true);
    in = new DataInputStream(socket.getInputStream());
    out = socket.getOutputStream();
  }

  /** Writes raw bytes as they are (no size prefix added). */
  void writeRaw(byte[] bytes) throws IOException {
    out.write(bytes);
    out.flush();
  }

  /** Writes one frame: int32 size, then the payload. */
  void writeFrame(ByteBuffer payload) throws IOException {
    ByteBuffer frame = ByteBuffer.allocate(4 + payload.remaining());
    frame.putInt(payload.remaining()).put(payload.duplicate()).flip();
    writeRaw(toArray(frame));
  }

  RequestHeader header(AbstractRequest request) {
    return new RequestHeader(request.apiKey(), request.version(), "raw-conformance", nextCorrelationId++);
  }

  /** Sends a request and returns its header (to match the response). */
  RequestHeader send(AbstractRequest request) throws IOException {
    RequestHeader h = header(request);
    writeFrame(request.serializeWithHeader(h));
    return h;
  }

  /** Reads one frame's payload. */
  ByteBuffer readFrame() throws IOException {
    int size = in.readInt();
    if (size < 0 || size > 64 * 1024 * 1024) {
      throw new IOException("implausible response size " + size);
    }
    byte[] payload = new byte[size];
    in.readFully(payload);
    return ByteBuffer.wrap(payload);
  }

  /** Reads the response to {@code header} (which must be the next one on this connection). */
  AbstractResponse receive(RequestHeader header) throws IOException {
    return AbstractResponse.parseResponse(readFrame(), header);
  }

  @SuppressWarnings("unchecked")
  <R extends AbstractResponse> R roundTrip(AbstractRequest request) throws IOException {
    return (R) receive(send(request));
  }

  /** True if the peer closes the connection within {@code within} (EOF or reset on read). */
  boolean closedByPeer(Duration within) throws IOException {
    socket.setSoTimeout((int) within.toMillis());
    try {
      int b = in.read();
      if (b == -1) {
        return true;
      }
      // Unexpected data: drain what is there, then see whether the close follows.
      return false;
    } catch (EOFException | SocketException e) {
      return true;
    } catch (SocketTimeoutException e) {
      return false;
    }
  }

  /** Half-closes: the broker sees end of stream, the connection can still be read. */
  void shutdownOutput() throws IOException {
    socket.shutdownOutput();
  }

  static byte[] toArray(ByteBuffer buffer) {
    byte[] bytes = new byte[buffer.remaining()];
    buffer.duplicate().get(bytes);
    return bytes;
  }

  @Override
  public void close() throws IOException {
    socket.close();
  }
}
