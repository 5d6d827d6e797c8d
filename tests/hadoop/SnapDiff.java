// Test helper: Hadoop's own snapshot diff (DistributedFileSystem's over
// hdfs://, which pages through getSnapshotDiffReportListing, or
// WebHdfsFileSystem's over webhdfs://) for each FROM TO pair, printing
// "=== FROM TO" and then the report's toString().
//   java SnapDiff URI DIR FROM TO [FROM TO ...]

import java.lang.reflect.Method;
import java.net.URI;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

public class SnapDiff {
  public static void main(String[] args) throws Exception {
    FileSystem fs = FileSystem.get(new URI(args[0]), new Configuration());
    Method diff = fs.getClass().getMethod(
        "getSnapshotDiffReport", Path.class, String.class, String.class);
    Path dir = new Path(args[1]);
    for (int i = 2; i + 1 < args.length; i += 2) {
      System.out.println("=== " + args[i] + " " + args[i + 1]);
      System.out.print(diff.invoke(fs, dir, args[i], args[i + 1]).toString());
    }
    System.out.flush();
    fs.close();
  }
}
