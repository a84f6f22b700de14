"""Stage `stimuli`: the grating table (Parquet) and a contact sheet of the stimuli."""

from psychovis.pipeline import stage_start  # noqa: F401  (first: signals handled during the imports below)

# isort: split

from psychovis import gratings, io, plots
from psychovis.pipeline import resources
from psychovis.pipeline.runner import StageContext, run_stage

OUT = "data/stimuli"


def main(ctx: StageContext) -> None:
    p = ctx.params["stimuli"]
    table = gratings.stimulus_table(
        kind=p["kind"],
        size=p["size"],
        frequencies_cpd=gratings.frequency_axis(
            p["frequency_start_cpd"], p["frequency_stop_cpd"], p["frequency_step_cpd"]
        ),
        mapping=p["frequency_mapping"],
        viewing_distance_in=p["viewing_distance_in"],
        pixels_per_inch=p["pixels_per_inch"],
        orientations_deg=p["orientations_deg"],
        phases_rad=p["phases_rad"],
        contrasts=p["contrasts"],
    )
    resources.check_stimuli(table["frequency_cpd"].nunique(), p["size"])  # the contact sheet: one per frequency
    with ctx.run() as run:
        io.write_parquet(table, f"{OUT}/stimuli.parquet")
        # One thumbnail per frequency (first orientation/phase/contrast) keeps the sheet readable.
        shown = table.drop_duplicates("frequency_cpd")
        images = gratings.render(shown)[:, 0].numpy()
        labels = [f"{f:.1f} cpd" for f in shown["frequency_cpd"]]
        sheet = io.save_figure(plots.contact_sheet(images, labels), f"{OUT}/contact_sheet.png")
        run.log_metrics(
            {
                "stimuli": len(table),
                "frequencies": table["frequency_cpd"].nunique(),
                "max_frequency_cpp": table["frequency_cpp"].max(),
            }
        )
        run.log_artifact(sheet, "figures")


if __name__ == "__main__":
    run_stage("stimuli", main)
