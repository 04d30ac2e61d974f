"""Joining MP4 chunk videos without ffmpeg in the data path: their samples copied, one index written.

``boxes`` reads and writes the file's boxes, ``tables`` a track's sample tables, ``h264`` repeats
what ffmpeg's concat does to H.264 samples, ``source`` opens one input, ``join`` writes the output.
"""
