"""Build a tiny scene in Blender, so the example needs no binary .blend file.

Run by Blender, before it renders (see blender.yaml):

    blender -b --factory-startup --python make_scene.py -o frames/frame_#### -F PNG -x 1 \
            -s 0 -e 3 -a -- --width 64 --height 64 --fps 8 --frames 8

A cube slides and turns over the video's frames (0 .. frames - 1) in front of a camera, lit by the
sun, rendered by Cycles on the CPU with a few samples: it renders headless, without a GPU or a display.
"""

from __future__ import annotations

import argparse
import math
import sys

import bpy  # Blender's own module: this file runs inside Blender, not in framefarm's Python


def options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make_scene.py")
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--fps", type=int, required=True)
    parser.add_argument("--frames", type=int, required=True)
    parser.add_argument("--samples", type=int, default=4)
    return parser.parse_args(sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else [])


def build(args: argparse.Namespace) -> None:
    scene = bpy.context.scene
    for thing in list(bpy.data.objects):
        bpy.data.objects.remove(thing, do_unlink=True)
    scene.render.resolution_x, scene.render.resolution_y = args.width, args.height
    scene.render.resolution_percentage = 100
    scene.render.fps = args.fps
    scene.frame_start, scene.frame_end = 0, args.frames - 1
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False

    bpy.ops.mesh.primitive_cube_add(size=2.0)
    cube = bpy.context.active_object
    last = args.frames - 1
    for frame, x, turn in ((0, -1.5, 0.0), (last, 1.5, 80.0)):  # under a quarter turn: no two frames alike
        cube.location = (x, 0.0, 0.0)
        cube.rotation_euler = (0.0, 0.0, math.radians(turn))
        cube.keyframe_insert("location", frame=frame)
        cube.keyframe_insert("rotation_euler", frame=frame)
    for curve in cube.animation_data.action.fcurves:  # the same step every frame
        for point in curve.keyframe_points:
            point.interpolation = "LINEAR"

    bpy.ops.object.camera_add(location=(6.0, -6.0, 4.5), rotation=(math.radians(63), 0.0, math.radians(45)))
    scene.camera = bpy.context.active_object
    bpy.ops.object.light_add(type="SUN", rotation=(math.radians(40), math.radians(20), 0.0))
    bpy.context.active_object.data.energy = 4.0


build(options())
