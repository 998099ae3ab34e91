<?php
/*
 * The local spool: snapshots that orderbridge has not accepted yet, one JSON file each.
 * Invariants:
 * - a file appears whole or not at all (written to a temp name, fsynced, renamed);
 * - names start with a zero-padded microsecond time, so sorting names is oldest first;
 * - a file holds {"id": webhook-id, "order_id", "spooled_at", "body"}; body is the exact
 *   signed JSON, or null when the snapshot could not be built and must be rebuilt;
 * - rejected/ keeps what orderbridge refused as invalid: kept for a human, never re-sent;
 * - the ".down" marker's mtime is the last failed send (see Relay's circuit breaker).
 */

namespace Orderbridge;

final class Spool
{
	/** @var string */
	private $dir;
	/** @var resource|null */
	private $lock = null;

	public function __construct(string $dir)
	{
		$this->dir = rtrim($dir, '/');
	}

	public function dir(): string
	{
		return $this->dir;
	}

	/** Writes one entry atomically; returns its path. Throws when the disk refuses. */
	public function put(string $id, string $orderId, ?string $body): string
	{
		$this->ensureDir($this->dir);
		[$usec, $sec] = explode(' ', microtime());
		$name = sprintf('%010d%06d', (int)$sec, (int)substr($usec, 2, 6))
			. '-' . preg_replace('/[^A-Za-z0-9_]/', '', $id) . '.json';
		$data = json_encode([
			'id' => $id,
			'order_id' => $orderId,
			'spooled_at' => time(),
			'body' => $body,
		], JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES | JSON_THROW_ON_ERROR);
		$path = $this->dir . '/' . $name;
		$this->writeAtomically($path, $data);
		return $path;
	}

	/** Paths of the oldest $limit entries, oldest first. */
	public function oldest(int $limit = PHP_INT_MAX): array
	{
		$paths = glob($this->dir . '/[0-9]*.json') ?: [];
		sort($paths, SORT_STRING);
		return array_slice($paths, 0, $limit);
	}

	public function count(): int
	{
		return count($this->oldest());
	}

	public function rejectedCount(): int
	{
		return count(glob($this->dir . '/rejected/*.json') ?: []);
	}

	/** The entry at $path, or null when it is unreadable (then it is moved aside). */
	public function read(string $path): ?array
	{
		$data = @file_get_contents($path);
		$entry = $data === false ? null : json_decode($data, true);
		if (!is_array($entry) || !isset($entry['id'], $entry['order_id'])
			|| !(is_string($entry['body']) || $entry['body'] === null)) {
			return null;
		}
		return $entry;
	}

	public function remove(string $path): void
	{
		@unlink($path);
	}

	/** Moves an entry that must not be re-sent to rejected/, for a human to look at. */
	public function reject(string $path): void
	{
		$this->ensureDir($this->dir . '/rejected');
		@rename($path, $this->dir . '/rejected/' . basename($path));
	}

	/**
	 * An exclusive, non-blocking lock so that two agents (or an agent and a cron run) do
	 * not send the same entry twice. False when somebody else holds it.
	 */
	public function lock(): bool
	{
		$this->ensureDir($this->dir);
		$fp = fopen($this->dir . '/.lock', 'c');
		if ($fp === false || !flock($fp, LOCK_EX | LOCK_NB)) {
			if ($fp) {
				fclose($fp);
			}
			return false;
		}
		$this->lock = $fp;
		return true;
	}

	public function unlock(): void
	{
		if ($this->lock) {
			flock($this->lock, LOCK_UN);
			fclose($this->lock);
			$this->lock = null;
		}
	}

	public function markDown(): void
	{
		$this->ensureDir($this->dir);
		@touch($this->dir . '/.down');
	}

	public function markUp(): void
	{
		@unlink($this->dir . '/.down');
	}

	/** Seconds since the last failed send, or null when the last send went through. */
	public function downFor(int $now): ?int
	{
		clearstatcache(true, $this->dir . '/.down');
		$t = @filemtime($this->dir . '/.down');
		return $t === false ? null : max(0, $now - $t);
	}

	private function writeAtomically(string $path, string $data): void
	{
		$tmp = $this->dir . '/.tmp-' . bin2hex(random_bytes(8));
		$fp = fopen($tmp, 'xb');
		if ($fp === false) {
			throw new \RuntimeException('cannot create a file in the spool ' . $this->dir);
		}
		$ok = fwrite($fp, $data) === strlen($data) && fflush($fp);
		if ($ok && function_exists('fsync')) {
			$ok = fsync($fp); // the entry must survive a power cut once the buyer saw "ordered"
		}
		fclose($fp);
		if (!$ok || !rename($tmp, $path)) {
			@unlink($tmp);
			throw new \RuntimeException('cannot write to the spool ' . $this->dir);
		}
	}

	private function ensureDir(string $dir): void
	{
		if (!is_dir($dir) && !@mkdir($dir, 0770, true) && !is_dir($dir)) {
			throw new \RuntimeException('cannot create the spool directory ' . $dir);
		}
		// Belt and braces for a spool inside the web root: it holds buyers' contacts.
		$guard = $dir . '/.htaccess';
		if (!file_exists($guard)) {
			@file_put_contents($guard, "<IfModule mod_authz_core.c>\nRequire all denied\n</IfModule>\n"
				. "<IfModule !mod_authz_core.c>\nDeny from all\n</IfModule>\n");
		}
	}
}
