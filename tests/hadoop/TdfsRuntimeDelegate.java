import java.util.LinkedHashMap;
import java.util.Map;
import org.apache.hadoop.shaded.javax.ws.rs.core.Application;
import org.apache.hadoop.shaded.javax.ws.rs.core.Link;
import org.apache.hadoop.shaded.javax.ws.rs.core.MediaType;
import org.apache.hadoop.shaded.javax.ws.rs.core.Response;
import org.apache.hadoop.shaded.javax.ws.rs.core.UriBuilder;
import org.apache.hadoop.shaded.javax.ws.rs.core.Variant;
import org.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate;

/**
 * The one piece of a JAX-RS runtime that Hadoop's WebHDFS client needs and
 * that its shaded jars lack (HADOOP-19652): parsing and printing a
 * Content-Type ({@code MediaType.valueOf}). Without it every WebHDFS reply
 * with a Content-Type fails with "Response decoding failure". Named with
 * -Dorg.apache.hadoop.shaded.javax.ws.rs.ext.RuntimeDelegate=TdfsRuntimeDelegate;
 * the Hadoop client itself stays unmodified. Everything else is refused.
 */
public class TdfsRuntimeDelegate extends RuntimeDelegate {
  @Override
  @SuppressWarnings("unchecked")
  public <T> HeaderDelegate<T> createHeaderDelegate(Class<T> type) {
    if (type == MediaType.class) {
      return (HeaderDelegate<T>) new MediaTypes();
    }
    throw new IllegalArgumentException("no header delegate for " + type);
  }

  /** "type/subtype; name=value; ..." in both directions. */
  static final class MediaTypes implements HeaderDelegate<MediaType> {
    @Override
    public MediaType fromString(String s) {
      if (s == null) {
        throw new IllegalArgumentException("media type is null");
      }
      String[] parts = s.split(";");
      String[] ts = parts[0].trim().split("/", 2);
      String type = ts[0].trim();
      String sub = ts.length > 1 ? ts[1].trim() : MediaType.MEDIA_TYPE_WILDCARD;
      if (type.isEmpty()) {
        type = MediaType.MEDIA_TYPE_WILDCARD;
      }
      Map<String, String> params = new LinkedHashMap<>();
      for (int i = 1; i < parts.length; i++) {
        String[] kv = parts[i].split("=", 2);
        if (kv.length == 2 && !kv[0].trim().isEmpty()) {
          params.put(kv[0].trim().toLowerCase(), kv[1].trim().replaceAll("^\"|\"$", ""));
        }
      }
      return new MediaType(type, sub, params);
    }

    @Override
    public String toString(MediaType m) {
      StringBuilder b = new StringBuilder(m.getType()).append('/').append(m.getSubtype());
      for (Map.Entry<String, String> e : m.getParameters().entrySet()) {
        b.append(';').append(e.getKey()).append('=').append(e.getValue());
      }
      return b.toString();
    }
  }

  @Override
  public UriBuilder createUriBuilder() {
    throw new UnsupportedOperationException("UriBuilder");
  }

  @Override
  public Response.ResponseBuilder createResponseBuilder() {
    throw new UnsupportedOperationException("ResponseBuilder");
  }

  @Override
  public Variant.VariantListBuilder createVariantListBuilder() {
    throw new UnsupportedOperationException("VariantListBuilder");
  }

  @Override
  public <T> T createEndpoint(Application application, Class<T> endpointType) {
    throw new UnsupportedOperationException("createEndpoint");
  }

  @Override
  public Link.Builder createLinkBuilder() {
    throw new UnsupportedOperationException("Link.Builder");
  }
}
