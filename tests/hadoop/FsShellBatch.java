import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.PrivilegedExceptionAction;
import java.util.Arrays;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FsShell;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.util.ToolRunner;

/**
 * Runs many Hadoop FsShell commands (the real {@code hadoop fs}) in one JVM,
 * because starting a JVM costs seconds. Usage: FsShellBatch COMMANDS_FILE.
 * Each line of the file is one command, fields separated by tabs: the user
 * to run as ("-" for the JVM's own user; simple authentication), then the
 * FsShell arguments. For each command it prints, on its real stdout:
 *
 * <pre>
 * \u0001tdfs-fsshell N exit=CODE
 * ...the command's stdout...
 * \u0001stderr
 * ...the command's stderr...
 * \u0001end
 * </pre>
 */
public class FsShellBatch {
  public static void main(String[] argv) throws Exception {
    List<String> lines = Files.readAllLines(Paths.get(argv[0]), StandardCharsets.UTF_8);
    Configuration conf = new Configuration();
    PrintStream realOut = System.out;
    PrintStream realErr = System.err;
    int n = 0;
    for (String line : lines) {
      if (line.isEmpty()) {
        continue;
      }
      String[] f = line.split("\t", -1);
      String user = f[0];
      String[] args = Arrays.copyOfRange(f, 1, f.length);
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      int code;
      System.setOut(new PrintStream(out, true, "UTF-8"));
      System.setErr(new PrintStream(err, true, "UTF-8"));
      try {
        PrivilegedExceptionAction<Integer> run = () -> ToolRunner.run(new FsShell(conf), args);
        code = user.equals("-") ? run.run() : UserGroupInformation.createRemoteUser(user).doAs(run);
      } catch (Throwable t) {
        t.printStackTrace();
        code = -999;
      } finally {
        System.out.flush();
        System.err.flush();
        System.setOut(realOut);
        System.setErr(realErr);
      }
      realOut.print("\u0001tdfs-fsshell " + n + " exit=" + code + "\n");
      realOut.print(out.toString("UTF-8"));
      realOut.print("\n\u0001stderr\n");
      realOut.print(err.toString("UTF-8"));
      realOut.print("\n\u0001end\n");
      realOut.flush();
      n++;
    }
  }
}
