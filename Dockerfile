FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 VAR_DIR=/app/var
WORKDIR /app

COPY pyproject.toml ./
COPY assistant assistant
COPY common common
COPY tenants tenants
COPY channels_im channels_im
COPY conversations conversations
RUN pip install .
COPY . .
# collectstatic needs settings to load; these throwaway values never reach a running container.
# var/metrics exists in the image so that the volume mounted there starts out the user's.
# The user's id is fixed (999, what useradd --system gave it before) so that Kubernetes can
# check it is not root (deploy/: runAsUser) and volumes made by earlier images stay its own.
RUN SECRET_KEY=build FIELD_ENCRYPTION_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    python manage.py collectstatic --noinput -v 0 \
 && useradd --system --uid 999 --user-group --home /app assistant \
 && mkdir -p /app/var/metrics && chown -R assistant /app/var
USER assistant

EXPOSE 8000
CMD ["gunicorn", "-b", "0.0.0.0:8000"]
