"""The Gradio studio: UI only. One module per tab; it never imports torch and never trains in its
own process: it calls trainer_backend's torch-free APIs and starts subprocesses for the rest."""
