"""Pose estimation over HTTP: the API and the page (``app``), the bounded work queue
(``engine``), the named models loaded once (``models``), the page (``page``, Gradio) and the
same app on Ray Serve (``ray_serve``). Started by ``python demo_web.py`` /
``rtpose.tools.serve``. Needs the web extra (FastAPI, uvicorn, Gradio): nothing here is
imported by the rest of rtpose.
"""
