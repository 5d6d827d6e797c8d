// Test helper: N rounds through one Hadoop FileSystem (one failover proxy).
// Round i creates the empty file DIR/f<i>, then lists DIR with listStatus
// and with listFiles, and checks both listings hold exactly f0..f<i>, all
// empty files; it prints "ok I MILLIS" (the round's time) and goes on. A
// wrong listing prints "MISMATCH ..." and exits with status 2.
//   java ListCheckLoop DIR N

import java.util.TreeSet;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;

public class ListCheckLoop {
  static void mismatch(int round, String how, TreeSet<String> want, TreeSet<String> got) {
    System.out.println("MISMATCH round " + round + " (" + how + "): want " + want + " got " + got);
    System.exit(2);
  }

  public static void main(String[] args) throws Exception {
    FileSystem fs = FileSystem.get(new Configuration());
    Path dir = new Path(args[0]);
    int n = Integer.parseInt(args[1]);
    fs.mkdirs(dir);
    TreeSet<String> want = new TreeSet<>();
    for (int i = 0; i < n; i++) {
      long t0 = System.nanoTime();
      String name = String.format("f%04d", i);
      fs.create(new Path(dir, name)).close();
      want.add(name);
      TreeSet<String> got = new TreeSet<>();
      for (FileStatus s : fs.listStatus(dir)) {
        if (!s.isFile() || s.getLen() != 0) {
          mismatch(i, "listStatus: " + s, want, got);
        }
        got.add(s.getPath().getName());
      }
      if (!got.equals(want)) {
        mismatch(i, "listStatus", want, got);
      }
      got.clear();
      RemoteIterator<LocatedFileStatus> it = fs.listFiles(dir, false);
      while (it.hasNext()) {
        got.add(it.next().getPath().getName());
      }
      if (!got.equals(want)) {
        mismatch(i, "listFiles", want, got);
      }
      System.out.println("ok " + i + " " + (System.nanoTime() - t0) / 1000000);
      System.out.flush();
    }
    fs.close();
  }
}
