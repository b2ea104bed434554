"""`weakfeat extract classify`: backbones on a video."""

import click

COMMANDS: list[click.Command] = []


@click.command(name="classify")
@click.argument("video", type=click.Path(exists=True, dir_okay=False))
@click.option("--backbone", default="i3d-inception", show_default=True,
              help="registered backbone name")
@click.option("--pretrained", default="kinetics400", show_default=True,
              help='"kinetics400" or a checkpoint path')
@click.option("--num-classes", default=400, show_default=True,
              help="classes of the checkpoint's head (400: Kinetics labels are printed)")
@click.option("--topk", default=5, show_default=True)
def classify_command(video: str, backbone: str, pretrained: str, num_classes: int,
                     topk: int) -> None:
    """Print the top-k labels of VIDEO with their logits (one centre view, all frames)."""
    from extract.backbones.classify import classify_video

    for label, logit in classify_video(video, backbone=backbone, pretrained=pretrained,
                                       num_classes=num_classes, topk=topk):
        click.echo(f"{logit:8.3f}  {label}")


COMMANDS.append(classify_command)
