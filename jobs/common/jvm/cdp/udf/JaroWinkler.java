package cdp.udf;

import org.apache.spark.sql.api.java.UDF2;

/**
 * Jaro-Winkler similarity as a Spark SQL UDF running in the JVM (no Python worker, no Arrow hop).
 *
 * The definition of jobs/match/comparisons.py (Winkler 1990, strcmp95): matching window
 * max(len)/2 - 1; greedy matching left to right; transpositions = half (integer division) the
 * matched characters out of order; prefix bonus 0.1 * prefix * (1 - jaro) for a common prefix of
 * at most 4 characters, only when jaro exceeds 0.7. Characters are Unicode code points, as in
 * Python's str (rapidfuzz) and Spark's split(s, ''). Null when either side is null.
 */
public final class JaroWinkler implements UDF2<String, String, Double> {
  private static final long serialVersionUID = 1L;

  @Override
  public Double call(String a, String b) {
    if (a == null || b == null) {
      return null;
    }
    return similarity(a, b);
  }

  public static double similarity(String a, String b) {
    int[] s1 = a.codePoints().toArray();
    int[] s2 = b.codePoints().toArray();
    int l1 = s1.length;
    int l2 = s2.length;
    if (l1 == 0 && l2 == 0) {
      return 1.0;
    }
    if (l1 == 0 || l2 == 0) {
      return 0.0;
    }
    int window = Math.max(Math.max(l1, l2) / 2 - 1, 0);
    boolean[] used = new boolean[l2];
    int[] matched1 = new int[Math.min(l1, l2)];
    int m = 0;
    for (int i = 0; i < l1; i++) {
      int hi = Math.min(l2 - 1, i + window);
      for (int j = Math.max(0, i - window); j <= hi; j++) {
        if (!used[j] && s2[j] == s1[i]) {
          used[j] = true;
          matched1[m++] = i;
          break;
        }
      }
    }
    if (m == 0) {
      return 0.0;
    }
    int outOfOrder = 0;
    int k = 0;
    for (int j = 0; j < l2; j++) {
      if (used[j]) {
        if (s1[matched1[k]] != s2[j]) {
          outOfOrder++;
        }
        k++;
      }
    }
    int t = outOfOrder / 2;
    double jaro = ((double) m / l1 + (double) m / l2 + (double) (m - t) / m) / 3.0;
    if (!(jaro > 0.7)) {
      return jaro;
    }
    int prefix = 0;
    int maxPrefix = Math.min(4, Math.min(l1, l2));
    while (prefix < maxPrefix && s1[prefix] == s2[prefix]) {
      prefix++;
    }
    return jaro + prefix * 0.1 * (1.0 - jaro);
  }
}
