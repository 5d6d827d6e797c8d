// Test helper: lists DIR N times through one Hadoop FileSystem (so one
// failover proxy), printing "listed COUNT" after each; for tests that stop
// the leader while a client is in the middle of its work.
//   java ListLoop DIR N

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

public class ListLoop {
  public static void main(String[] args) throws Exception {
    FileSystem fs = FileSystem.get(new Configuration());
    int n = Integer.parseInt(args[1]);
    for (int i = 0; i < n; i++) {
      FileStatus[] s = fs.listStatus(new Path(args[0]));
      System.out.println("listed " + s.length);
      System.out.flush();
      Thread.sleep(20);
    }
    fs.close();
  }
}
