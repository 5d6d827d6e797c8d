import java.io.OutputStream;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FsShell;
import org.apache.hadoop.util.ToolRunner;

/**
 * Times Hadoop FsShell commands (the real {@code hadoop fs}) in one JVM, for
 * throughput figures: their stdout (a {@code -cat} of a large file) goes
 * nowhere, and the JVM's start-up is not counted. Usage: FsShellTimed CMD
 * [ARGS...] [-- CMD [ARGS...]]... Prints one line per command:
 * {@code timed exit=CODE ms=MILLIS ARGS...}.
 */
public class FsShellTimed {
  public static void main(String[] argv) throws Exception {
    Configuration conf = new Configuration();
    PrintStream realOut = System.out;
    List<List<String>> cmds = new ArrayList<>();
    cmds.add(new ArrayList<>());
    for (String a : argv) {
      if (a.equals("--")) {
        cmds.add(new ArrayList<>());
      } else {
        cmds.get(cmds.size() - 1).add(a);
      }
    }
    PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream());
    for (List<String> c : cmds) {
      String[] args = c.toArray(new String[0]);
      System.setOut(nowhere);
      long t0 = System.nanoTime();
      int code = ToolRunner.run(new FsShell(conf), args);
      long ms = (System.nanoTime() - t0) / 1_000_000;
      System.setOut(realOut);
      realOut.println("timed exit=" + code + " ms=" + ms + " " + Arrays.toString(args));
      realOut.flush();
    }
  }
}
