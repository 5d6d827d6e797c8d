// Test helper around Hadoop's unmodified Java client (FsShell and
// FileSystem from hadoop-client-api). A JVM costs seconds to start on a
// small machine, so one run executes several FsShell commands in turn:
//   java TdfsShell -ls / --next -mkdir -p /a --next ...
// printing "### CMD" before and "### rc N" after each (stderr merged into
// stdout so the order is kept). With --list-loop DIR N it lists DIR N times
// through one FileSystem, printing "listed COUNT" each time (failover tests).

import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FsShell;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.util.ToolRunner;

public class TdfsShell {
  public static void main(String[] args) throws Exception {
    System.setErr(System.out);
    if (args.length == 3 && args[0].equals("--list-loop")) {
      listLoop(args[1], Integer.parseInt(args[2]));
      return;
    }
    List<List<String>> cmds = new ArrayList<>();
    cmds.add(new ArrayList<>());
    for (String a : args) {
      if (a.equals("--next")) {
        cmds.add(new ArrayList<>());
      } else {
        cmds.get(cmds.size() - 1).add(a);
      }
    }
    for (List<String> cmd : cmds) {
      System.out.println("### " + String.join(" ", cmd));
      System.out.flush();
      int rc = ToolRunner.run(new FsShell(new Configuration()), cmd.toArray(new String[0]));
      System.out.println("### rc " + rc);
      System.out.flush();
    }
  }

  static void listLoop(String dir, int n) throws Exception {
    FileSystem fs = FileSystem.get(new Configuration());
    for (int i = 0; i < n; i++) {
      FileStatus[] s = fs.listStatus(new Path(dir));
      System.out.println("listed " + s.length);
      System.out.flush();
      Thread.sleep(20);
    }
    fs.close();
  }
}
