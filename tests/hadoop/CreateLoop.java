// Benchmark helper: creates N empty files DIR/f-I through one Hadoop
// FileSystem (create, then close: the client's complete), one after
// another, and prints "created N in MS ms" (timed inside the JVM, after
// a first warm-up create).
//   java CreateLoop DIR N

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

public class CreateLoop {
  public static void main(String[] args) throws Exception {
    FileSystem fs = FileSystem.get(new Configuration());
    int n = Integer.parseInt(args[1]);
    fs.mkdirs(new Path(args[0]));
    fs.create(new Path(args[0], "warm-up")).close();
    long t0 = System.nanoTime();
    for (int i = 0; i < n; i++) {
      fs.create(new Path(args[0], "f-" + i)).close();
    }
    long ms = (System.nanoTime() - t0) / 1_000_000;
    System.out.println("created " + n + " in " + ms + " ms");
    fs.close();
  }
}
