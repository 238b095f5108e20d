# Atende: one image for every role (web, ws, worker, beat, migrate); compose.yaml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# curl is for the container health checks; psycopg[binary] brings its own libpq.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system atende \
    && useradd --system --gid atende --home-dir /app --no-create-home --shell /usr/sbin/nologin atende

WORKDIR /app

# Dependencies first, so a code change does not reinstall them.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .

# collectstatic runs in the embedded mode (no DATABASE_URL): it touches no database.
RUN python manage.py collectstatic --noinput -v0 \
    && mkdir -p /app/media \
    && chown -R atende:atende /app/media

USER atende

EXPOSE 8000 8001

CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"]
