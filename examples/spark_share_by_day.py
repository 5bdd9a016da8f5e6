"""The Spark worked example (docs/spark.md): posts -> scored table -> emotion share by day.

    python examples/spark_share_by_day.py posts examples/support-tickets.csv posts/   # a Parquet folder
    emotionaware-spark score posts/ scored/ --text-col text --view ekman
    python examples/spark_share_by_day.py share scored/ --day-col created_at

``posts`` writes a CSV of posts as a Parquet folder of several files (what a data lake holds);
``share`` prints, for each day, how many posts were scored and the share of them in which each
label was predicted (a post may carry several labels, so a day's shares need not sum to 1).
"""

from __future__ import annotations

import argparse
import os
import sys


def spark_session():
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = SparkSession.builder.master("local[*]").appName("emotion share by day").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def write_posts(spark, csv_path: str, out: str, files: int = 3) -> None:
    posts = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(csv_path)
    posts.repartition(files).write.mode("overwrite").parquet(out)


def share_by_day(scored, day_col: str = "created_at", prefix: str = "emotion_"):
    """Rows (day, label, posts, share): per day, the share of its scored posts predicted as ``label``."""
    from pyspark.sql import functions as F

    ok = scored.filter(F.col(prefix + "error").isNull()).withColumn("day", F.to_date(F.col(day_col)))
    per_day = ok.groupBy("day").agg(F.count(F.lit(1)).alias("posts"))
    labelled = (
        ok.select("day", F.explode(prefix + "predicted").alias("label")).groupBy("day", "label").count()
    )
    return (
        labelled.join(per_day, "day")
        .withColumn("share", F.round(F.col("count") / F.col("posts"), 3))
        .select("day", "label", "posts", "share")
        .orderBy("day", F.desc("share"), "label")
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    posts = sub.add_parser("posts", help="a CSV of posts -> a Parquet folder")
    posts.add_argument("csv")
    posts.add_argument("out")
    share = sub.add_parser("share", help="a scored Parquet folder -> emotion share by day")
    share.add_argument("scored")
    share.add_argument("--day-col", default="created_at")
    args = parser.parse_args(argv)
    spark = spark_session()
    if args.command == "posts":
        write_posts(spark, args.csv, args.out)
        return
    table = share_by_day(spark.read.parquet(args.scored), args.day_col)
    # Wide: one row per day, one column per label.
    wide = table.groupBy("day", "posts").pivot("label").sum("share").orderBy("day").fillna(0.0)
    wide.show(n=1000, truncate=False)


if __name__ == "__main__":
    main()
